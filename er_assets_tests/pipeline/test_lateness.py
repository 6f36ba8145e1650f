"""Late partitions on a frozen clock: on time, late and never started, late and running, late
after a failure, late and then delivered; mailed once, through the sensor as the daemon runs
it, to a real SMTP server; recorded in the job history for the report.

customers runs daily at 03:00 US/Eastern with a 60-minute SLA: partition 2026-11-28 fires at
2026-11-29 03:00 EST (08:00 UTC) and is due at 09:00 UTC.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from er_assets.dagster_private import latest_check_evaluation
from er_assets.defs import sensors
from er_assets.defs.definitions import build_definitions
from er_assets.history import HistoryStore, LatePartition, Status
from er_assets.pipeline.lateness import due_at, find_late

UTC = dt.timezone.utc
PARTITION = "2026-11-28"
DUE = dt.datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SINCE = dt.datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(local_env):
    with HistoryStore.from_env() as store:
        yield store


def customers(config, store, now, since=SINCE) -> list[LatePartition]:
    return [p for p in find_late(config, store, now, since) if p.domain == "customers"]


def stage(store, name, status, at, run_id="run-1"):
    store.record_start(run_id, name, "customers", PARTITION, PARTITION, "autosys:ER_CUSTOMER_EXTRACT", started_at=at)
    if status is not Status.RUNNING:
        store.record_end(run_id, name, status, ended_at=at + dt.timedelta(minutes=5))


def test_the_due_time_is_the_schedule_time_plus_the_sla(config):
    assert due_at(config.domain("customers"), PARTITION) == DUE


def test_on_time_is_not_late(config, store):
    assert customers(config, store, DUE - dt.timedelta(minutes=1)) == []
    stage(store, "extract", Status.SUCCEEDED, DUE - dt.timedelta(minutes=50))
    stage(store, "matched", Status.SUCCEEDED, DUE - dt.timedelta(minutes=40))
    stage(store, "loaded", Status.SUCCEEDED, DUE - dt.timedelta(minutes=30))
    assert customers(config, store, DUE + dt.timedelta(hours=2)) == []


def test_late_and_never_started(config, store):
    assert customers(config, store, DUE) == [LatePartition("customers", PARTITION, DUE, "never started")]


def test_late_and_still_running(config, store):
    stage(store, "extract", Status.SUCCEEDED, DUE - dt.timedelta(minutes=55))
    stage(store, "matched", Status.RUNNING, DUE - dt.timedelta(minutes=45))
    [late] = customers(config, store, DUE + dt.timedelta(minutes=1))
    assert late.state == "matched still running"


def test_late_after_a_failure(config, store):
    stage(store, "extract", Status.DQ_FAILED, DUE - dt.timedelta(minutes=55))
    [late] = customers(config, store, DUE + dt.timedelta(minutes=1))
    assert late.state == "extract DQ_FAILED"


def test_late_and_then_delivered(config, store):
    stage(store, "extract", Status.SUCCEEDED, DUE + dt.timedelta(minutes=10))
    assert [p.state for p in customers(config, store, DUE + dt.timedelta(minutes=20))] == ["extract SUCCEEDED"]
    stage(store, "matched", Status.SUCCEEDED, DUE + dt.timedelta(minutes=20))
    stage(store, "loaded", Status.SUCCEEDED, DUE + dt.timedelta(minutes=30))
    assert customers(config, store, DUE + dt.timedelta(minutes=40)) == []


def test_what_fell_due_before_the_watching_began_is_not_news(config, store):
    assert customers(config, store, DUE + dt.timedelta(days=2), since=DUE + dt.timedelta(minutes=1)) == [
        LatePartition("customers", key, due, "never started")
        for key, due in (
            ("2026-11-29", DUE + dt.timedelta(days=1)),
            ("2026-11-30", DUE + dt.timedelta(days=2)),
        )
    ]


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("er_late_partitions")
    resources = {k: v for k, v in defs.resources.items() if k in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        return sensor.evaluate_tick(context)


def test_the_sensor_mails_each_late_partition_once_and_the_history_keeps_it(
    config, local_env, smtp, monkeypatch, store
):
    controller, inbox = smtp
    monkeypatch.setenv("ER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ER_SMTP_PORT", str(controller.port))
    clock = {"now": SINCE}
    monkeypatch.setattr(sensors, "now", lambda: clock["now"])
    defs = build_definitions(config)
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        first = tick(defs, instance)  # the watching begins
        assert first.cursor == SINCE.isoformat() and inbox.messages() == []

        key = dg.AssetCheckKey(dg.AssetKey(["customers", "loaded"]), "delivered")
        assert latest_check_evaluation(instance, key, PARTITION) is None  # on time so far: nothing to say
        clock["now"] = DUE + dt.timedelta(minutes=5)
        late = tick(defs, instance, first.cursor)
        assert late.cursor == clock["now"].isoformat()  # the next look starts from this one
        assert "customers 2026-11-28 (never started)" in late.skip_message
        # The UI shows it overdue: the loaded asset's `delivered` check failed for the partition,
        # a warning (lateness says nothing about the data), though loaded never ran.
        overdue = latest_check_evaluation(instance, key, PARTITION)
        assert not overdue.passed and overdue.severity == dg.AssetCheckSeverity.WARN
        assert overdue.description == (
            "overdue: not delivered (due 2026-11-29 09:00 UTC, 60 minutes (schedule.sla_minutes) after its "
            "schedule); never started"
        )
        again = tick(defs, instance, late.cursor)  # the next look: nothing new
        assert again.skip_message == "no partition newly late"

    [(to, message)] = [m for m in inbox.messages() if "customers" in m[1]["Subject"]]
    assert message["Subject"] == f"[ER LATE] customers partition {PARTITION}: never started"
    assert to == sorted(["customer-team@example.com", "er-admin@example.com"])  # the failure list
    body = message.get_content()
    assert "was due by 2026-11-29 04:00 US/Eastern (60 minutes after its schedule fired)" in body
    assert f"autosys-bridge run customers all --date {PARTITION}" in body and "autorep -J ER_CUSTOMER_BOX" in body

    stage(store, "extract", Status.SUCCEEDED, DUE + dt.timedelta(minutes=10))
    stage(store, "matched", Status.SUCCEEDED, DUE + dt.timedelta(minutes=20))
    stage(store, "loaded", Status.SUCCEEDED, DUE + dt.timedelta(minutes=30))
    [row] = [r for r in store.late_partitions() if r["domain"] == "customers"]
    assert (row["partition_key"], row["due_at"], row["state"]) == (PARTITION, DUE, "never started")
    assert row["delivered_at"] == DUE + dt.timedelta(minutes=35)


def test_a_mail_that_cannot_be_sent_is_tried_again_at_the_next_look(config, store):
    from er_assets.resources.notifications import notify_late

    class Down:
        def send(self, message):
            raise ConnectionRefusedError("mail server down")

    sent = []

    class Up:
        def send(self, message):
            sent.append(message)

    [late] = customers(config, store, DUE)
    with pytest.raises(ConnectionRefusedError):
        notify_late(config, late, store=store, mailer=Down())
    assert notify_late(config, late, store=store, mailer=Up()) is True
    assert notify_late(config, late, store=store, mailer=Up()) is False
    assert len(sent) == 1


def test_the_sla_is_elapsed_time_across_a_dst_change(tmp_path):
    """Clocks spring forward at 02:00 on 2026-03-08 in US/Eastern: a box firing at 01:00 EST
    (06:00 UTC) with a 180-minute SLA is due at 09:00 UTC (05:00 EDT), not at 04:00 EDT."""
    from er_assets.config import load_config
    from er_assets_tests.helpers import write_config

    def at_one(raw):
        raw["domains"]["customers"]["schedule"].update(time="01:00", sla_minutes=180)

    domain = load_config(write_config(tmp_path, at_one)).domain("customers")
    assert due_at(domain, "2026-03-07") == dt.datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
