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
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from er_assets.config import DEFAULT_CONFIG_PATH, WEEKDAYS, Configuration, Domain, load_config
from er_assets.history.dialect import UTC
from er_assets import stages
from er_assets import exit_codes
from er_assets.history.model import EXIT_CODE_BY_STATUS, Status
from er_assets.history.store import HistoryStore

DEMO_SLA_MINUTES = {"customers": 60, "products": 90, "vendors": 120}


@dataclass(frozen=True)
class _Profile:
    records: int  # typical extract size
    match_rate: float  # share of records matched to another


_PROFILES = {"customers": _Profile(48_000, 0.22), "products": _Profile(150_000, 0.31), "vendors": _Profile(9_000, 0.12)}
_DEFAULT_PROFILE = _Profile(20_000, 0.2)

# (stage, status, probability, message template) - the numbers differ per occurrence,
# as real ones do, and the history's error_key groups them back together.
_FAILURES = {
    "extract": [
        (Status.FAILED, 0.020, "Source query failed: canceling statement due to statement timeout after {n} ms"),
        (Status.DQ_FAILED, 0.025, "Check min_records failed: {n} records, expected at least 100"),
        (Status.DQ_FAILED, 0.010, "Check required_fields failed: {n} rows with null last_name"),
    ],
    "matched": [
        (Status.TIMEOUT, 0.015, "Matching job {id} still RUNNING after 10800 s (EXECUTION_TIMEOUT)"),
        (Status.FAILED, 0.015, "Matching job {id} FAILED: ThrottlingException: Rate exceeded"),
        (Status.DQ_FAILED, 0.020, "Check match_rate failed: {n}% outside [5, 60]"),
    ],
    "loaded": [
        (Status.FAILED, 0.010, "Load failed: could not obtain lock on relation resolved_{n}"),
    ],
}
_AUTOSYS_SUFFIX = {"extract": "EXTRACT", "matched": "PROCESS", "loaded": "LOAD"}


def _partitions(domain: Domain, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.date, dt.datetime]]:
    """(partition date, scheduled run time) for every partition the schedule ran in [start, end)."""
    s = domain.schedule
    tz = zoneinfo.ZoneInfo(s.timezone)
    day = start.astimezone(tz).date() - dt.timedelta(days=62)  # a month's period ends a month later
    result = []
    while day <= end.astimezone(tz).date():
        if s.cadence == "daily":
            due = day + dt.timedelta(days=1)
        elif s.cadence == "weekly":
            # isoweekday() % 7 counts from Sunday = 0, as WEEKDAYS does
            due = day + dt.timedelta(days=7) if day.isoweekday() % 7 == WEEKDAYS.index(s.day_of_week) else None
        elif day.day == (s.day_of_month or 1):  # at most 28: every month has that day
            due = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=day.day)
        else:
            due = None
        if due is not None:
            run_at = dt.datetime.combine(due, dt.time(s.hour, s.minute), tz).astimezone(UTC)
            if start <= run_at < end:
                result.append((day, run_at))
        day += dt.timedelta(days=1)
    return result


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
    UTC, so one day's demos agree); returns the number of stage runs written."""
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
        for process_date, run_at in _partitions(domain, start, now):
            written += _run_partition(
                store, rng, domain, profile, process_date, run_at, slow_from <= run_at < slow_until, now
            )
    return written


def _run_partition(
    store: HistoryStore,
    rng: random.Random,
    domain: Domain,
    profile: _Profile,
    process_date: dt.date,
    run_at: dt.datetime,
    slow: bool,
    now: dt.datetime,
) -> int:
    """All stage runs of one partition: each stage until it succeeds or is given up."""
    partition = process_date.isoformat()
    days_in = (process_date - dt.date(2024, 1, 1)).days
    weekday_factor = 0.75 if process_date.weekday() >= 5 else 1.0
    records = int(profile.records * (1 + days_in * 0.0008) * weekday_factor * rng.uniform(0.92, 1.08))
    clock, written = run_at, 0
    for stage in stages.ASSETS:
        for attempt in range(3):
            if clock >= now:
                return written
            trigger = f"autosys:{domain.autosys.job_prefix}_{_AUTOSYS_SUFFIX[stage]}" if attempt == 0 else "ui"
            run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            store.record_start(
                run_id,
                stage,
                domain.name,
                partition,
                process_date,
                trigger,
                job_name="__ASSET_JOB",
                autosys_job_name=trigger.split(":", 1)[1] if attempt == 0 else None,
                started_at=clock,
            )
            status, message = _outcome(rng, stage)
            seconds = _duration(rng, stage, records, slow) if status is Status.SUCCEEDED else rng.uniform(4, 600)
            if status is Status.TIMEOUT:
                seconds = 10800 + rng.uniform(0, 60)
            end = clock + dt.timedelta(seconds=seconds)
            count = records if stage != "loaded" else int(records * (1 - profile.match_rate * rng.uniform(0.9, 1.1)))
            store.record_end(
                run_id,
                stage,
                status,
                record_count=count if status is Status.SUCCEEDED else None,
                exit_code=EXIT_CODE_BY_STATUS.get(status, exit_codes.STAGE_FAILED),
                error_message=message,
                metadata=(
                    {"attempt": attempt + 1, "match_rate": round(profile.match_rate * 100, 1)}
                    if stage == "matched"
                    else {"attempt": attempt + 1}
                ),
                ended_at=end,
            )
            written += 1
            # The next stage starts when AutoSys sees this one succeed; a failure is looked
            # at and re-run by hand from the UI some time later.
            clock = end + dt.timedelta(
                seconds=rng.uniform(20, 90) if status is Status.SUCCEEDED else rng.uniform(1800, 7200)
            )
            if status is Status.SUCCEEDED:
                break
        else:
            return written  # given up after three attempts: the partition is never delivered
    return written


def _outcome(rng: random.Random, stage: str) -> tuple[Status, str | None]:
    draw = rng.random()
    for status, probability, template in _FAILURES[stage]:
        if draw < probability:
            return status, template.format(n=rng.randint(2, 99), id=uuid.UUID(int=rng.getrandbits(128)).hex)
        draw -= probability
    return Status.SUCCEEDED, None


def _duration(rng: random.Random, stage: str, records: int, slow: bool) -> float:
    if stage == "extract":
        return 30 + records / 900 * rng.uniform(0.8, 1.3)
    if stage == "matched":
        return (420 + records / 120 * rng.uniform(0.85, 1.25)) * (rng.uniform(3.0, 4.5) if slow else 1)
    return 20 + records / 2000 * rng.uniform(0.8, 1.3)
