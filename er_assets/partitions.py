"""Partitions derived from a domain's schedule, and the business dates they cover.

A partition key is the first business date of its period (daily: the day; weekly: the
configured weekday that starts the week; monthly: the configured day of the month). The
schedule's hour only says when the period is complete; the source rows of a partition are
those whose DATE column lies in [first date, first date of the next period).

This module is on the CLI path: it imports Dagster lazily.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Any

from er_assets.config import WEEKDAYS, Domain

if TYPE_CHECKING:
    import dagster as dg


def partitions_def(domain: Domain) -> dg.TimeWindowPartitionsDefinition:
    import dagster as dg

    s = domain.schedule
    common: dict[str, Any] = dict(
        start_date=s.start_date.isoformat(),
        hour_offset=s.hour,
        minute_offset=s.minute,
        timezone=s.timezone,
        fmt="%Y-%m-%d",
    )
    if s.cadence == "daily":
        return dg.DailyPartitionsDefinition(**common)
    if s.cadence == "weekly":
        return dg.WeeklyPartitionsDefinition(day_offset=WEEKDAYS.index(s.day_of_week), **common)
    assert s.day_of_month is not None  # Schedule sets it on every monthly schedule
    return dg.MonthlyPartitionsDefinition(day_offset=s.day_of_month, **common)


def _period_start(domain: Domain, day: dt.date) -> dt.date:
    """The first day of the cadence period that contains `day`."""
    s = domain.schedule
    if s.cadence == "daily":
        return day
    if s.cadence == "weekly":
        # Python's weekday() has Monday=0; WEEKDAYS starts on Sunday.
        back = (day.weekday() + 1 - WEEKDAYS.index(s.day_of_week)) % 7
        return day - dt.timedelta(days=back)
    assert s.day_of_month is not None  # Schedule sets it on every monthly schedule
    start = day.replace(day=s.day_of_month)
    return _add_months(start, -1) if day.day < s.day_of_month else start


def partition_for_date(domain: Domain, day: dt.date) -> str:
    """The key of the partition whose period contains the calendar day `day`."""
    start = _period_start(domain, day)
    if start < domain.schedule.start_date:
        raise ValueError(
            f"{day.isoformat()} is before the first partition of domain '{domain.name}' ({domain.schedule.start_date})"
        )
    return start.isoformat()


def business_dates(domain: Domain, partition_key: str) -> tuple[dt.date, dt.date]:
    """[first, end) calendar dates of the partition's period."""
    try:
        start = dt.date.fromisoformat(partition_key)
    except ValueError:
        raise ValueError(f"{partition_key!r} is not a partition key (YYYY-MM-DD)") from None
    if partition_for_date(domain, start) != partition_key:
        raise ValueError(
            f"{partition_key!r} is not the first day of a {domain.schedule.cadence} partition of '{domain.name}'"
        )
    cadence = domain.schedule.cadence
    if cadence == "daily":
        return start, start + dt.timedelta(days=1)
    if cadence == "weekly":
        return start, start + dt.timedelta(days=7)
    return start, _add_months(start, 1)


def latest_complete_partition(domain: Domain, now: dt.datetime | None = None) -> str:
    """The newest partition whose period has ended at `now`, in the domain's time zone.

    A period ends at its schedule time on the first day of the next period (the moment the
    schedule fires for it), matching Dagster's own notion of a complete time window.
    """
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zoneinfo.ZoneInfo(domain.schedule.timezone))
    start, _ = business_dates(domain, partition_for_date(domain, local.date()))
    # The current period is still open; so is the previous one until the schedule time passes.
    previous = partition_for_date(domain, start - dt.timedelta(days=1))
    if local < completed_at(domain, previous):
        previous = partition_for_date(domain, dt.date.fromisoformat(previous) - dt.timedelta(days=1))
    return previous


def completed_at(domain: Domain, partition_key: str) -> dt.datetime:
    """When the partition is complete and its schedule fires: the schedule time on the first
    day of the next period, in the domain's time zone (the end of Dagster's time window)."""
    s = domain.schedule
    _, end = business_dates(domain, partition_key)
    return dt.datetime.combine(end, dt.time(s.hour, s.minute), zoneinfo.ZoneInfo(s.timezone))


def completed_between(domain: Domain, start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(key, completed_at) of every partition completed in [start, end), oldest first."""
    try:
        key: str | None = latest_complete_partition(domain, end)
    except ValueError:  # no partition is complete yet at `end`
        return []
    found = []
    while key is not None and (done := completed_at(domain, key)) >= start:
        if done < end:
            found.append((key, done))
        key = next(iter(previous_partitions(domain, key, 1)), None)
    return found[::-1]


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


def previous_partitions(domain: Domain, partition_key: str, count: int) -> list[str]:
    """Up to `count` keys of the partitions just before `partition_key`, newest first."""
    keys: list[str] = []
    start, _ = business_dates(domain, partition_key)
    while len(keys) < count:
        # A period that starts before start_date is not a partition (weekly ones begin on the
        # first configured weekday on or after it).
        start = _period_start(domain, start - dt.timedelta(days=1))
        if start < domain.schedule.start_date:
            break
        keys.append(start.isoformat())
    return keys
