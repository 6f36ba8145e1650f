"""Stage-end metrics in CloudWatch: what one stage end publishes (read back from a moto server
with GetMetricData), the SLA judged as er_v_sla_compliance judges it, nothing at all locally,
and a stage end that loses its metrics quietly and quickly when CloudWatch is out of reach."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from er_assets.history import HistoryStore, Status
from er_assets.resources import metrics
from er_assets_tests.helpers import metric_values

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PARTITION = "2026-10-01"


def minutes_ago(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path):
    with HistoryStore.from_url(f"sqlite:///{tmp_path / 'history.db'}") as opened:
        yield opened


def stage(store, run_id, name, started, ended, status=Status.SUCCEEDED, records=300, metadata=None):
    """One stage execution of vendors' partition, as the recording writes it."""
    store.record_start(run_id, name, "vendors", PARTITION, PARTITION, "cli", started_at=started)
    store.record_end(run_id, name, status, records, metadata=metadata or {}, ended_at=ended)
    return store.get(run_id, name)


def by_name(datums: list[dict]) -> dict[tuple, float]:
    return {(d["MetricName"], *(x["Value"] for x in d["Dimensions"])): d["Value"] for d in datums}


def test_a_stage_end_publishes_its_figures_in_one_call_and_they_read_back(store, cloudwatch, monkeypatch):
    monkeypatch.setenv("ER_DEPLOYMENT", "production")
    stage(store, "r1", "extract", minutes_ago(40), minutes_ago(35))
    stage(store, "r1", "matched", minutes_ago(35), minutes_ago(20), metadata={"match_rate": 12.5, "job_id": "j"})
    stage(store, "r1", "loaded", minutes_ago(20), minutes_ago(15), records=298)
    for name in ("extract", "matched", "loaded"):
        assert metrics.publish_stage_end(store, "r1", name, 120, "us-east-1")
    # One PutMetricData request per stage end, each accepted at the first attempt.
    assert (metrics.counters.published, metrics.counters.attempts, metrics.counters.failed) == (3, 3, 0)

    def read(name, stat="Sum", **dims):
        return metric_values(cloudwatch, name, stat, **dims)

    for name in ("extract", "matched", "loaded"):
        assert read(metrics.SUCCEEDED, Domain="vendors", Stage=name) == [1.0]
        assert read(metrics.FAILED, Domain="vendors", Stage=name) == [0.0]
        assert read(metrics.CANCELLED, Domain="vendors", Stage=name) == [0.0]
    assert sorted(read(metrics.FAILED, Domain="vendors")) == [0.0, 0.0, 0.0]  # the Domain-only datum
    assert read(metrics.DURATION, "Maximum", Domain="vendors", Stage="matched") == [900.0]
    assert read(metrics.RECORDS, Domain="vendors", Stage="loaded") == [298.0]
    assert read(metrics.MATCH_RATE, "Average", Domain="vendors", Stage="matched") == [12.5]
    assert read(metrics.MATCH_RATE, "Average", Domain="vendors", Stage="extract") == []
    # Delivered 25 minutes after the partition's first start, within 120: MET.
    assert read(metrics.SLA_MET, "Minimum", Domain="vendors", Stage="loaded") == [1.0]
    assert read(metrics.DELIVERY, "Maximum", Domain="vendors", Stage="loaded") == [1500.0]
    assert read(metrics.SLA_MET, "Minimum", Domain="vendors", Stage="matched") == []
    listed = cloudwatch.list_metrics(Namespace=metrics.DEFAULT_NAMESPACE)["Metrics"]
    assert {tuple(d["Name"] for d in m["Dimensions"]) for m in listed} == {("Domain", "Stage"), ("Domain",)}


def test_the_sla_is_judged_from_the_first_start_to_the_first_delivery_only(store):
    stage(store, "r1", "extract", minutes_ago(200), minutes_ago(190))
    stage(store, "r1", "matched", minutes_ago(190), minutes_ago(180), status=Status.FAILED, records=None)
    stage(store, "r2", "matched", minutes_ago(60), minutes_ago(40))
    late = stage(store, "r2", "loaded", minutes_ago(40), minutes_ago(30))
    partition = store.partition_rows("vendors", [PARTITION])
    # 170 minutes from the first extract's start: LATE against 120, MET against 180.
    assert by_name(metrics.stage_datums(late, 120, partition))[(metrics.SLA_MET, "vendors", "loaded")] == 0.0
    assert by_name(metrics.stage_datums(late, 180, partition))[(metrics.DELIVERY, "vendors", "loaded")] == 170 * 60
    # A re-run of the delivered partition is no second delivery; no SLA without one configured.
    again = stage(store, "r3", "loaded", minutes_ago(10), minutes_ago(5))
    partition = store.partition_rows("vendors", [PARTITION])
    assert (metrics.SLA_MET, "vendors", "loaded") not in by_name(metrics.stage_datums(again, 120, partition))
    assert (metrics.SLA_MET, "vendors", "loaded") not in by_name(metrics.stage_datums(late, None, partition))


@pytest.mark.parametrize(
    "status, failed, cancelled",
    [(Status.FAILED, 1, 0), (Status.DQ_FAILED, 1, 0), (Status.TIMEOUT, 1, 0), (Status.CANCELLED, 0, 1)],
)
def test_outcomes(store, status, failed, cancelled):
    row = stage(store, "r1", "matched", minutes_ago(10), minutes_ago(5), status, None)
    # A NaN rate (no history stores one, but a metadata value may be anything) is left out.
    figures = by_name(metrics.stage_datums(dataclasses.replace(row, metadata={"match_rate": math.nan}), 120, []))
    assert figures == {
        (metrics.SUCCEEDED, "vendors", "matched"): 0.0,
        (metrics.FAILED, "vendors", "matched"): failed,
        (metrics.CANCELLED, "vendors", "matched"): cancelled,
        (metrics.FAILED, "vendors"): failed,
        (metrics.DURATION, "vendors", "matched"): 300.0,
        # no Records (none counted), no MatchRate (NaN, which CloudWatch rejects), no SLA
    }


def test_locally_no_client_is_made(store, cloudwatch, monkeypatch):
    monkeypatch.delenv("ER_DEPLOYMENT", raising=False)
    made = []
    monkeypatch.setattr(metrics, "_client", lambda region: made.append(region))
    stage(store, "r1", "extract", minutes_ago(10), minutes_ago(5))
    assert metrics.publish_stage_end(store, "r1", "extract", 120, "us-east-1") is False
    assert made == [] and metrics.counters == metrics.Counters()
    assert cloudwatch.list_metrics()["Metrics"] == []


def test_unreachable_cloudwatch_costs_two_quick_attempts_and_one_line_per_process(store, cloudwatch, monkeypatch):
    monkeypatch.setenv("ER_DEPLOYMENT", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")  # nothing listens: refused at once
    said: list[str] = []
    stage(store, "r1", "extract", minutes_ago(10), minutes_ago(8))
    stage(store, "r1", "matched", minutes_ago(8), minutes_ago(5))
    for name in ("extract", "matched"):
        assert metrics.publish_stage_end(store, "r1", name, 120, "us-east-1", said.append) is False
    assert metrics.counters == metrics.Counters(published=0, failed=2, attempts=2 * metrics.MAX_ATTEMPTS)
    assert len(said) == 1 and "\n" not in said[0] and "Traceback" not in said[0]
    assert said[0].startswith("CloudWatch metrics not published (EndpointConnectionError: ")


def test_the_namespace_comes_from_the_environment_and_must_be_one_cloudwatch_takes():
    assert metrics.namespace({}) == "EntityResolution/Pipelines"
    assert metrics.namespace({metrics.NAMESPACE_ENV: "Team/ER"}) == "Team/ER"
    for bad in ("AWS/ER", ":ER", "ER\nX", "x" * 256):
        with pytest.raises(ValueError, match=metrics.NAMESPACE_ENV):
            metrics.namespace({metrics.NAMESPACE_ENV: bad})
