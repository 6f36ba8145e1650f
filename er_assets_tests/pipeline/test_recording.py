"""Exactly one history row per stage execution, whatever started it, on SQLite and PostgreSQL."""

import json
import os
import signal
import subprocess
import sys

import dagster as dg
import pytest

from er_assets import exit_codes
from er_assets.defs.definitions import build_definitions
from er_assets.history import HistoryStore
from er_assets_tests.helpers import seed, write_config

pytest_plugins = ["er_assets_tests.postgres"]
BRIDGE = [sys.executable, "-m", "autosys_bridge.cli"]


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, local_env, monkeypatch):
    url = f"sqlite:///{local_env}/history.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("ER_HISTORY_URL", url)
    return url


def rows(url):
    with HistoryStore.from_url(url) as store:
        return sorted(
            ((r.stage, r.status.value, r.record_count, r.trigger, r.exit_code) for r in store.rows()),
            key=lambda row: ("extract", "matched", "loaded").index(row[0]),
        )


def test_in_process_run_and_its_rerun_each_count_once_per_stage(config, local_env, history_url):
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(["vendors", s]) for s in ("extract", "matched", "loaded")]
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        first = job.execute_in_process(instance=instance, partition_key="2026-10-01", asset_selection=selection)
        job.execute_in_process(instance=instance, partition_key="2026-10-01", asset_selection=selection[2:])
    assert rows(history_url) == [
        ("extract", "SUCCEEDED", 300, "ui", 0),
        ("matched", "SUCCEEDED", 300, "ui", 0),
        ("loaded", "SUCCEEDED", 300, "ui", 0),
        ("loaded", "SUCCEEDED", 300, "ui", 0),
    ]
    with HistoryStore.from_url(history_url) as store:
        extract = store.get(first.run_id, "extract")
    assert extract.partition_key == "2026-10-01" and extract.metadata["rows"] == 300
    # The configuration's SLAs reach the history, where the SLA view reads them.
    with HistoryStore.from_url(history_url) as store:
        sla = {r["domain"]: r["sla_minutes"] for r in store.query("SELECT domain, sla_minutes FROM er_sla")}
    assert sla == {"customers": 60, "products": 90, "vendors": 120}
    assert extract.duration_seconds >= 0 and extract.end_time >= extract.start_time


def test_runs_started_anywhere_get_the_bridge_tags(config, local_env):
    """A UI materialisation of two assets, a schedule's run of the job and a backfill run carry
    domain, stage, process_date and er/trigger like a bridge run; tags already set are kept."""
    seed(config.domain("vendors"), "2026-10-01", 200, local_env)
    defs = build_definitions(config)
    implicit, job = defs.resolve_implicit_global_asset_job_def(), defs.resolve_job_def("ER_vendors")
    keys = [dg.AssetKey(["vendors", s]) for s in ("extract", "matched", "loaded")]
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        implicit.execute_in_process(instance=instance, partition_key="2026-10-01", asset_selection=keys[:1])
        ui = implicit.execute_in_process(instance=instance, partition_key="2026-10-01", asset_selection=keys[1:])
        scheduled = job.execute_in_process(
            instance=instance, partition_key="2026-10-01", tags={"dagster/schedule_name": "vendors_schedule"}
        )
        backfill = job.execute_in_process(
            instance=instance,
            partition_key="2026-10-01",
            asset_selection=keys[2:],
            tags={"dagster/backfill": "abc", "process_date": "2026-10-15"},
        )
        tags = {
            name: instance.get_run_by_id(result.run_id).tags
            for name, result in (("ui", ui), ("schedule", scheduled), ("backfill", backfill))
        }
    wanted = ("domain", "stage", "process_date", "er/trigger")
    assert {name: tuple(t[k] for k in wanted) for name, t in tags.items()} == {
        "ui": ("vendors", "process+load", "2026-10-01", "ui"),
        "schedule": ("vendors", "all", "2026-10-01", "schedule"),
        "backfill": ("vendors", "load", "2026-10-15", "backfill"),
    }
    assert all(t[".dagster/repository"] == "__repository__@er_assets" for t in tags.values())  # the job page's filter


def test_bridge_run_with_a_failed_gate(config, local_env, history_url, tmp_path):
    path = write_config(tmp_path, lambda raw: raw["domains"]["vendors"]["dq"].update(min_records=1000))
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    env = {**os.environ, "AUTO_JOB_NAME": "ER_VENDOR_EXTRACT", "AUTORUN": "7"}
    done = subprocess.run(
        [*BRIDGE, "run", "vendors", "all", "--date", "2026-10-01", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == exit_codes.DQ_GATE_FAILED, done.stderr[-1500:]
    # The gate stopped the run after extract: no row for stages that never started.
    assert rows(history_url) == [("extract", "DQ_FAILED", 300, "autosys:ER_VENDOR_EXTRACT", exit_codes.DQ_GATE_FAILED)]


def test_cancelled_bridge_run_is_recorded_as_cancelled(config, local_env, history_url):
    seed(config.domain("customers"), "2026-11-28", 60_000, local_env)
    # A slow job: the signal lands while the bridge polls, however late this test reads the log.
    slow = {**os.environ, "ER_EMULATOR_FAULTS": json.dumps({"job": {"running_seconds": 60}})}
    proc = subprocess.Popen(
        [*BRIDGE, "run", "customers", "all", "--date", "2026-11-28"],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    for line in proc.stdout:
        if "started matching job" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.TERMINATED
    assert rows(history_url) == [
        ("extract", "SUCCEEDED", 60_000, "cli", 0),
        ("matched", "CANCELLED", None, "cli", exit_codes.TERMINATED),
    ]


def _run_vendors_in_production(config, local_env, monkeypatch):
    """extract, matched, loaded of vendors on the local resources, with ER_DEPLOYMENT=production
    from the first stage on: the switch the metrics read at each stage end."""
    from er_assets.resources import metrics

    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    monkeypatch.setenv("ER_DEPLOYMENT", "production")
    selection = [dg.AssetKey(["vendors", s]) for s in ("extract", "matched", "loaded")]
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        result = job.execute_in_process(instance=instance, partition_key="2026-10-01", asset_selection=selection)
        said = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.user_message.startswith("CloudWatch metrics not published")
        ]
    assert result.success
    return result, said, metrics.counters


def test_in_production_each_recorded_end_reaches_cloudwatch(config, local_env, cloudwatch, monkeypatch):
    from er_assets.resources import metrics
    from er_assets_tests.helpers import metric_values

    result, said, counters = _run_vendors_in_production(config, local_env, monkeypatch)
    assert said == [] and counters == metrics.Counters(published=3, failed=0, attempts=3)
    for stage in ("extract", "matched", "loaded"):
        assert metric_values(cloudwatch, metrics.SUCCEEDED, Domain="vendors", Stage=stage) == [1.0]
        assert metric_values(cloudwatch, metrics.RECORDS, Domain="vendors", Stage=stage) == [300.0]
    with HistoryStore.from_url(f"sqlite:///{local_env}/history.db") as store:
        matched = store.get(result.run_id, "matched")
    rate = metric_values(cloudwatch, metrics.MATCH_RATE, "Average", Domain="vendors", Stage="matched")
    assert rate == [matched.metadata["match_rate"]]
    assert metric_values(cloudwatch, metrics.SLA_MET, "Minimum", Domain="vendors", Stage="loaded") == [1.0]


def test_an_unreachable_cloudwatch_fails_no_stage_and_is_said_once(config, local_env, cloudwatch, monkeypatch):
    from er_assets.resources import metrics

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")  # refused at once
    _, said, counters = _run_vendors_in_production(config, local_env, monkeypatch)
    # Three stage ends, two quick attempts each, one line in the run's log for them all.
    assert counters == metrics.Counters(published=0, failed=3, attempts=3 * metrics.MAX_ATTEMPTS)
    assert len(said) == 1 and "\n" not in said[0]
    assert [r[:2] for r in rows(f"sqlite:///{local_env}/history.db")] == [
        ("extract", "SUCCEEDED"),
        ("matched", "SUCCEEDED"),
        ("loaded", "SUCCEEDED"),
    ]
