"""Late partitions, found while they are late: a partition is late when its final stage has
not succeeded `schedule.sla_minutes` after its schedule fired (`partitions.completed_at`),
whether a stage failed, one still runs, or nothing started at all (AutoSys down, a box on
hold, a feed that never came). Failures mail on their own; an absence does not, so the
`er_late_partitions` sensor looks for them, mails each once and marks the loaded asset's
`delivered` check overdue for it (`checks.overdue`), which the UI shows until a load
delivers the partition.

The job history is the witness: every stage writes its row however it was started (AutoSys,
a schedule, the UI, a backfill), so "delivered" means a SUCCEEDED row of the final stage.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from er_assets import stages
from er_assets.config import Configuration, Domain
from er_assets.history import HistoryStore, JobRun, LatePartition, Status
from er_assets.partitions import completed_at, completed_between


def due_at(domain: Domain, partition_key: str) -> dt.datetime:
    """When the partition must be delivered: its schedule time plus the SLA, in elapsed time
    (added in UTC: local wall-clock arithmetic is an hour off across a DST change)."""
    return _due(completed_at(domain, partition_key), domain)


def _due(fired: dt.datetime, domain: Domain) -> dt.datetime:
    return fired.astimezone(dt.timezone.utc) + dt.timedelta(minutes=domain.schedule.sla_minutes)


def find_late(config: Configuration, store: HistoryStore, now: dt.datetime, since: dt.datetime) -> list[LatePartition]:
    """The partitions of every domain that fell due in [since, now] and are not delivered,
    oldest first per domain. `since` is when the watching began: partitions due before it
    are history, not news (a first deployment must not mail every gap of the past)."""
    found = []
    for domain in config.domains.values():
        sla = dt.timedelta(minutes=domain.schedule.sla_minutes)
        keys = [
            key for key, fired in completed_between(domain, since - sla, now) if since <= _due(fired, domain) <= now
        ]
        rows: dict[str, list[JobRun]] = defaultdict(list)
        for row in store.partition_rows(domain.name, keys):
            rows[row.partition_key].append(row)
        for key in keys:
            state = _state(rows[key])
            if state is not None:
                found.append(LatePartition(domain.name, key, due_at(domain, key), state))
    return found


def _state(rows: list[JobRun]) -> str | None:
    """Where an undelivered partition stands (None: it was delivered)."""
    if any(r.stage == stages.FINAL and r.status is Status.SUCCEEDED for r in rows):
        return None
    running = [r for r in rows if r.status is Status.RUNNING]
    if running:
        return f"{running[-1].stage} still running"
    if rows:
        return f"{rows[-1].stage} {rows[-1].status.value}"
    return "never started"
