"""The dashboard views give the numbers a person would count by hand, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest

from er_assets.history import HistoryStore

pytest_plugins = ["er_assets_tests.postgres"]  # the PostgreSQL server fixtures, one server per session

UTC = dt.timezone.utc
DAY1 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DAY2 = DAY1 + dt.timedelta(days=1)


def stage(store, run_id, domain, partition, name, start, seconds, status="SUCCEEDED", records=None, error=None):
    store.record_start(run_id, name, domain, partition, partition, "schedule", started_at=start)
    if status != "RUNNING":
        store.record_end(
            run_id,
            name,
            status,
            record_count=records,
            error_message=error,
            ended_at=start + dt.timedelta(seconds=seconds),
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path}/h.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = HistoryStore.from_url(url)
    store.sync_sla({"customers": 60, "vendors": 120, "products": 60})
    minute = dt.timedelta(minutes=1)
    # customers 2025-02-28: a clean run in 14 minutes
    stage(store, "c1", "customers", "2025-02-28", "extract", DAY1, 100, records=1000)
    stage(store, "c1", "customers", "2025-02-28", "matched", DAY1 + 2 * minute, 600, records=1000)
    stage(store, "c1", "customers", "2025-02-28", "loaded", DAY1 + 13 * minute, 60, records=990)
    # customers 2025-03-01: the extract fails, a re-run 90 minutes later delivers at 104 minutes
    stage(store, "c2", "customers", "2025-03-01", "extract", DAY2, 5, "FAILED", error="Expected 100 records, got 42")
    stage(store, "c3", "customers", "2025-03-01", "extract", DAY2 + 90 * minute, 300, records=1100)
    stage(store, "c3", "customers", "2025-03-01", "matched", DAY2 + 92 * minute, 600, records=1100)
    stage(store, "c3", "customers", "2025-03-01", "loaded", DAY2 + 103 * minute, 60, records=1050)
    # vendors: stopped by a DQ gate, never delivered
    stage(
        store,
        "v1",
        "vendors",
        "2025-02-01",
        "extract",
        DAY1 + 120 * minute,
        3,
        "DQ_FAILED",
        error="Expected 100 records, got 7",
    )
    # products: running right now
    stage(store, "p1", "products", "2025-03-02", "extract", dt.datetime.now(UTC), 0, "RUNNING")
    yield store
    store.close()


def by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_success_rate_by_domain_and_day(store):
    rates = by(store.view("er_v_success_rate"), "domain", "day")
    day1, day2 = DAY1.date(), DAY2.date()
    assert (rates["customers", day1]["runs"], rates["customers", day1]["success_rate_pct"]) == (3, 100.0)
    assert {k: rates["customers", day2][k] for k in ("runs", "succeeded", "failed", "success_rate_pct")} == {
        "runs": 4,
        "succeeded": 3,
        "failed": 1,
        "success_rate_pct": 75.0,
    }
    assert (rates["vendors", day1]["failed"], rates["vendors", day1]["success_rate_pct"]) == (1, 0.0)
    (products,) = [r for (d, _), r in rates.items() if d == "products"]
    assert products["running"] == 1 and products["success_rate_pct"] is None  # nothing finished yet


def test_duration_trend_counts_succeeded_stages_only(store):
    durations = by(store.view("er_v_stage_duration"), "domain", "stage", "day")
    assert durations["customers", "extract", DAY2.date()]["runs"] == 1  # the 5 s failure is left out
    assert durations["customers", "extract", DAY2.date()]["avg_seconds"] == pytest.approx(300, abs=0.1)
    assert durations["customers", "matched", DAY1.date()]["max_seconds"] == pytest.approx(600, abs=0.1)
    assert not any(d == "vendors" for d, _, _ in durations)


def test_sla_compliance_per_partition(store):
    sla = by(store.view("er_v_sla_compliance"), "domain", "partition_key")
    assert (sla["customers", "2025-02-28"]["sla_status"], sla["customers", "2025-02-28"]["elapsed_minutes"]) == (
        "MET",
        14.0,
    )
    assert (sla["customers", "2025-03-01"]["sla_status"], sla["customers", "2025-03-01"]["elapsed_minutes"]) == (
        "LATE",
        104.0,
    )
    assert sla["customers", "2025-03-01"]["started_at"] == DAY2  # the clock starts at the failed first attempt
    assert sla["customers", "2025-03-01"]["process_date"] == dt.date(2025, 3, 1)
    assert (sla["vendors", "2025-02-01"]["sla_status"], sla["vendors", "2025-02-01"]["delivered_at"]) == (
        "MISSED",
        None,
    )
    assert sla["products", "2025-03-02"]["sla_status"] == "PENDING"


def test_sla_follows_the_configuration_without_ddl(store):
    store.sync_sla({"customers": 120})
    sla = by(store.view("er_v_sla_compliance"), "domain", "partition_key")
    assert sla["customers", "2025-03-01"]["sla_status"] == "MET"
    assert sla["vendors", "2025-02-01"]["sla_status"] is None  # no SLA configured any more
    with pytest.raises(ValueError):
        store.sync_sla({"customers": 0})


def test_record_volume(store):
    volume = by(store.view("er_v_record_volume"), "domain", "stage", "day")
    assert volume["customers", "loaded", DAY1.date()]["records"] == 990
    assert volume["customers", "extract", DAY2.date()]["records"] == 1100


def test_most_common_errors_group_alike_messages(store):
    errors = store.view("er_v_error_frequency")
    assert {(e["domain"], e["status"], e["error_key"], e["occurrences"]) for e in errors} == {
        ("customers", "FAILED", "Expected # records, got #", 1),
        ("vendors", "DQ_FAILED", "Expected # records, got #", 1),
    }
    top = store.query(
        "SELECT error_key, SUM(occurrences) AS n FROM er_v_error_frequency GROUP BY error_key ORDER BY n DESC"
    )
    assert top == [{"error_key": "Expected # records, got #", "n": 2}]


def test_views_filter_by_day(store):
    assert {r["day"] for r in store.view("er_v_success_rate", since=DAY2.date())} >= {DAY2.date()}
    assert DAY1.date() not in {r["day"] for r in store.view("er_v_success_rate", since=DAY2.date())}
    assert {r["partition_key"] for r in store.view("er_v_sla_compliance", since=DAY2.date())} == {
        "2025-03-01",
        "2025-03-02",
    }
    with pytest.raises(ValueError, match="unknown view"):
        store.view("er_job_history; DROP TABLE er_sla")
