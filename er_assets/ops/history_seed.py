"""A realistic, deterministic job history for the demo, the report screenshot and tests.

Each domain runs on its configured cadence; each stage is its own run, started by its
AutoSys job. Failures happen at plausible rates with plausible messages, are retried an hour
or so later from the Dagster UI, and a slow week of the matching service breaks SLAs.
Same (days, seed, now, configuration) -> same rows.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from er_assets import exit_codes, stages
from er_assets.config import DEFAULT_CONFIG_PATH, Configuration, Domain, load_config
from er_assets.history.dialect import UTC
from er_assets.history.model import EXIT_CODE_BY_STATUS, Status
from er_assets.history.store import HistoryStore
from er_assets.partitions import completed_between

DEMO_SLA_MINUTES = {"customers": 60, "products": 90, "vendors": 120}
EXTRACT, MATCHED, LOADED = stages.ASSETS
_BRIDGE_JOB = dict(zip(stages.ASSETS, stages.JOBS))  # the bridge's stage, and so AutoSys job, of each asset
_ATTEMPTS = 3  # a stage that failed this often is given up: its partition is never delivered


@dataclass(frozen=True)
class _Profile:
    records: int  # typical extract size
    match_rate: float  # share of records matched to another


_PROFILES = {"customers": _Profile(48_000, 0.22), "products": _Profile(150_000, 0.31), "vendors": _Profile(9_000, 0.12)}
_DEFAULT_PROFILE = _Profile(20_000, 0.2)

# (stage, status, probability, message template) - the numbers differ per occurrence,
# as real ones do, and the history's error_key groups them back together.
_FAILURES = {
    EXTRACT: [
        (Status.FAILED, 0.020, "Source query failed: canceling statement due to statement timeout after {n} ms"),
        (Status.DQ_FAILED, 0.025, "Check min_records failed: {n} records, expected at least 100"),
        (Status.DQ_FAILED, 0.010, "Check required_fields failed: {n} rows with null last_name"),
    ],
    MATCHED: [
        (Status.TIMEOUT, 0.015, "Matching job {id} still RUNNING after 10800 s (EXECUTION_TIMEOUT)"),
        (Status.FAILED, 0.015, "Matching job {id} FAILED: ThrottlingException: Rate exceeded"),
        (Status.DQ_FAILED, 0.020, "Check match_rate failed: {n}% outside [5, 60]"),
    ],
    LOADED: [
        (Status.FAILED, 0.010, "Load failed: could not obtain lock on relation resolved_{n}"),
    ],
}


@dataclass(frozen=True)
class _Partition:
    domain: Domain
    profile: _Profile
    process_date: dt.date
    records: int  # this partition's extract size
    slow: bool  # scheduled during the matching service's slow week


def seed_history(
    store: HistoryStore,
    days: int = 90,
    seed: int = 0,
    *,
    now: dt.datetime | None = None,
    config: Configuration | None = None,
    sla_minutes: Mapping[str, int] = DEMO_SLA_MINUTES,
) -> int:
    """Fill `store` with `days` days of history up to `now` (default: the start of today,
    UTC, so one day's demos agree); returns the number of stage runs written. Each partition
    Dagster's schedule completed in the window starts when its schedule fires."""
    config = config or load_config(DEFAULT_CONFIG_PATH)
    now = now or dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = now - dt.timedelta(days=days)
    rng = random.Random(seed)
    # A slow week at the matching service, two thirds of the way through the window.
    slow_from = start + dt.timedelta(days=days * 2 // 3)
    slow_until = slow_from + dt.timedelta(days=6)
    store.sync_sla({name: minutes for name, minutes in sla_minutes.items() if name in config.domains})
    written = 0
    for name, domain in sorted(config.domains.items()):
        profile = _PROFILES.get(name, _DEFAULT_PROFILE)
        for key, fires_at in completed_between(domain, start, now):
            process_date = dt.date.fromisoformat(key)
            partition = _Partition(
                domain, profile, process_date, _records(rng, profile, process_date), slow_from <= fires_at < slow_until
            )
            written += _run_partition(store, rng, partition, fires_at.astimezone(UTC), now)
    return written


def _records(rng: random.Random, profile: _Profile, process_date: dt.date) -> int:
    """A slowly growing extract, smaller at weekends."""
    days_in = (process_date - dt.date(2024, 1, 1)).days
    weekday_factor = 0.75 if process_date.weekday() >= 5 else 1.0
    return int(profile.records * (1 + days_in * 0.0008) * weekday_factor * rng.uniform(0.92, 1.08))


def _run_partition(store: HistoryStore, rng: random.Random, p: _Partition, clock: dt.datetime, now: dt.datetime) -> int:
    """All stage runs of one partition: each stage until it succeeds or is given up."""
    written = 0
    for stage in stages.ASSETS:
        for attempt in range(1, _ATTEMPTS + 1):
            if clock >= now:
                return written
            status, end = _stage_run(store, rng, p, stage, attempt, clock)
            written += 1
            # The next stage starts when AutoSys sees this one succeed; a failure is looked
            # at and re-run by hand from the UI some time later.
            clock = end + dt.timedelta(
                seconds=rng.uniform(20, 90) if status is Status.SUCCEEDED else rng.uniform(1800, 7200)
            )
            if status is Status.SUCCEEDED:
                break
        else:
            return written  # given up: the partition is never delivered
    return written


def _stage_run(
    store: HistoryStore, rng: random.Random, p: _Partition, stage: str, attempt: int, started_at: dt.datetime
) -> tuple[Status, dt.datetime]:
    """One run of one stage, by its AutoSys job the first time and from the UI after a
    failure; returns how and when it ended."""
    autosys_job = stages.command_job(p.domain.autosys.job_prefix, _BRIDGE_JOB[stage]) if attempt == 1 else None
    run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    store.record_start(
        run_id,
        stage,
        p.domain.name,
        p.process_date.isoformat(),
        p.process_date,
        f"autosys:{autosys_job}" if autosys_job else "ui",
        job_name=stages.job_name(p.domain.name),
        autosys_job_name=autosys_job,
        started_at=started_at,
    )
    status, message = _outcome(rng, stage)
    end = started_at + dt.timedelta(seconds=_duration(rng, stage, status, p))
    # The load writes the records that matched no other; drawn whatever the outcome.
    count = int(p.records * (1 - p.profile.match_rate * rng.uniform(0.9, 1.1))) if stage == LOADED else p.records
    metadata: dict[str, object] = {"attempt": attempt}
    if stage == MATCHED:
        metadata["match_rate"] = round(p.profile.match_rate * 100, 1)
    if stage == LOADED and status is Status.SUCCEEDED:
        metadata.update(_entity_figures(random.Random(run_id), p.records))
    store.record_end(
        run_id,
        stage,
        status,
        record_count=count if status is Status.SUCCEEDED else None,
        exit_code=EXIT_CODE_BY_STATUS.get(status, exit_codes.STAGE_FAILED),
        error_message=message,
        metadata=metadata,
        ended_at=end,
    )
    return status, end


def _entity_figures(rng: random.Random, records: int) -> dict:
    """What a load did to the durable entities (registry.IdentityFigures.metadata): a quarter of
    the records return to a known entity, a few merges and splits. Drawn from a generator of
    its own, so the rest of the seeded history stays as it was."""
    absorbed = int(records * rng.uniform(0.2, 0.3))
    merged, split = rng.randint(0, max(1, records // 500)), rng.randint(0, max(1, records // 2000))
    return {
        "entities_created": int((records - absorbed) * rng.uniform(0.8, 0.9)),
        "records_absorbed": absorbed,
        "entities_merged": merged,
        "entities_split": split,
        "entity_churn": merged * 2 + split,
    }


def _outcome(rng: random.Random, stage: str) -> tuple[Status, str | None]:
    draw = rng.random()
    for status, probability, template in _FAILURES[stage]:
        if draw < probability:
            return status, template.format(n=rng.randint(2, 99), id=uuid.UUID(int=rng.getrandbits(128)).hex)
        draw -= probability
    return Status.SUCCEEDED, None


def _duration(rng: random.Random, stage: str, status: Status, p: _Partition) -> float:
    if status is not Status.SUCCEEDED:
        seconds = rng.uniform(4, 600)  # a failure comes early, except the matching job's timeout
        return 10800 + rng.uniform(0, 60) if status is Status.TIMEOUT else seconds
    if stage == EXTRACT:
        return 30 + p.records / 900 * rng.uniform(0.8, 1.3)
    if stage == MATCHED:
        return (420 + p.records / 120 * rng.uniform(0.85, 1.25)) * (rng.uniform(3.0, 4.5) if p.slow else 1)
    return 20 + p.records / 2000 * rng.uniform(0.8, 1.3)
