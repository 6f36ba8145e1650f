"""Partitions and schedules derived from the configuration, checked against Dagster's own."""

import datetime as dt
import zoneinfo

import dagster as dg
import pytest

# Private: the one iterator over a cron string's ticks in a time zone that Dagster's schedules
# use; dagster/__init__.py of 1.13 exports none.
from dagster._utils.schedules import cron_string_iterator

from er_assets.partitions import business_dates, latest_complete_partition, partition_for_date, partitions_def

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "name, day, key, first, end",
    [
        ("customers", "2026-11-28", "2026-11-28", "2026-11-28", "2026-11-29"),
        ("products", "2026-11-25", "2026-11-22", "2026-11-22", "2026-11-29"),  # Wednesday -> its Sunday
        ("products", "2026-11-22", "2026-11-22", "2026-11-22", "2026-11-29"),  # a Sunday starts its own week
        ("products", "2026-11-28", "2026-11-22", "2026-11-22", "2026-11-29"),  # Saturday ends it
        ("vendors", "2026-02-28", "2026-02-01", "2026-02-01", "2026-03-01"),
        ("vendors", "2026-12-31", "2026-12-01", "2026-12-01", "2027-01-01"),
    ],
)
def test_partition_for_a_business_date(config, name, day, key, first, end):
    domain = config.domain(name)
    assert partition_for_date(domain, dt.date.fromisoformat(day)) == key
    assert business_dates(domain, key) == (dt.date.fromisoformat(first), dt.date.fromisoformat(end))
    # The key is one of Dagster's partition keys for the domain.
    assert key in partitions_def(domain).get_partition_keys(current_time=dt.datetime(2027, 2, 1, tzinfo=UTC))


def test_a_key_that_starts_no_period_is_refused(config):
    with pytest.raises(ValueError, match="not the first day of a weekly partition"):
        business_dates(config.domain("products"), "2026-11-24")


@pytest.mark.parametrize("name", ["customers", "products", "vendors"])
@pytest.mark.parametrize("hours", range(0, 24 * 40, 7))
def test_latest_complete_partition_agrees_with_dagster(config, name, hours):
    domain = config.domain(name)
    now = dt.datetime(2026, 10, 20, tzinfo=UTC) + dt.timedelta(hours=hours)
    with dg.partition_loading_context(effective_dt=now):
        expected = partitions_def(domain).get_last_partition_key()
    assert latest_complete_partition(domain, now) == expected


def test_daily_partition_across_the_dst_change_is_25_hours(config):
    """US/Eastern leaves daylight time at 02:00 on 2026-11-01: the 2026-10-31 partition runs
    from 03:00 EDT to 03:00 EST."""
    window = partitions_def(config.domain("customers")).time_window_for_partition_key("2026-10-31")
    eastern = zoneinfo.ZoneInfo("US/Eastern")
    assert window.start == dt.datetime(2026, 10, 31, 3, tzinfo=eastern)
    assert window.end.timestamp() - window.start.timestamp() == 25 * 3600
    assert (window.start.utcoffset(), window.end.utcoffset()) == (dt.timedelta(hours=-4), dt.timedelta(hours=-5))


def test_daily_schedule_fires_at_three_local_time_through_the_dst_week(config):
    from er_assets.defs.definitions import build_definitions

    schedule = build_definitions(config).resolve_schedule_def("customers_schedule")
    start = dt.datetime(2026, 10, 29, tzinfo=zoneinfo.ZoneInfo("US/Eastern"))
    ticks = cron_string_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    fired = [next(ticks) for _ in range(7)]
    assert all(t.hour == 3 and t.minute == 0 for t in fired)
    assert [t.astimezone(UTC).hour for t in fired] == [7, 7, 7, 8, 8, 8, 8]
    # Each tick targets the day that just ended.
    context = dg.build_schedule_context(scheduled_execution_time=fired[3])
    request = next(iter(schedule.evaluate_tick(context).run_requests))
    assert request.partition_key == "2026-10-31"


def test_previous_partitions_stop_at_the_first_partition(config):
    from er_assets.partitions import previous_partitions

    products = config.domain("products")  # start_date 2024-01-01 is a Monday: weeks start 2024-01-07
    first = partitions_def(products).get_first_partition_key()
    assert first == "2024-01-07"
    assert previous_partitions(products, first, 5) == []
    assert previous_partitions(products, "2024-01-21", 5) == ["2024-01-14", "2024-01-07"]
    assert previous_partitions(config.domain("vendors"), "2024-03-01", 5) == ["2024-02-01", "2024-01-01"]


def test_a_monthly_schedule_without_a_day_runs_on_the_first(tmp_path):
    from er_assets.config import load_config
    from er_assets_tests.helpers import write_config

    path = write_config(tmp_path, lambda raw: raw["domains"]["vendors"]["schedule"].pop("day_of_month"))
    vendors = load_config(path).domain("vendors")
    assert vendors.schedule.day_of_month == 1
    assert partition_for_date(vendors, dt.date(2026, 5, 17)) == "2026-05-01"


@pytest.mark.parametrize("name", ["customers", "products", "vendors"])
@pytest.mark.parametrize(
    "start, end",
    [
        ("2023-12-01T00:00", "2024-01-02T00:00"),  # before and up to the first partitions
        ("2023-11-20T00:00", "2024-03-20T00:00"),
        ("2026-10-01T07:00", "2026-11-05T08:00"),  # customers: both bounds a completion (03:00 EDT, 03:00 EST)
        ("2026-09-01T06:00", "2026-12-01T07:00"),  # vendors: both bounds a completion (02:00 EDT, 02:00 EST)
    ],
)
def test_partitions_completed_in_a_window_are_dagsters(config, name, start, end):
    from er_assets.partitions import completed_between

    domain = config.domain(name)
    start, end = (dt.datetime.fromisoformat(t).replace(tzinfo=UTC) for t in (start, end))
    definition = partitions_def(domain)
    windows = [
        (key, definition.time_window_for_partition_key(key).end)
        for key in definition.get_partition_keys(current_time=end + dt.timedelta(days=40))
    ]
    assert completed_between(domain, start, end) == [(key, done) for key, done in windows if start <= done < end]
