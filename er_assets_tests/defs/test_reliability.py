"""What a second run, a damaged file or two stages at once must never do: replace a good
partition with a worse one, load a stale output, or start a second matching job.

(Kills of the real bridge at every point are in bridge/test_fault_injection.py.)
"""

from __future__ import annotations

import os
import shutil

import dagster as dg
import duckdb
import pytest

from autosys_bridge.runner import exit_code_for
from er_assets import exit_codes
from er_assets.emulator.faults import FAULTS_ENV
from er_assets.environment import local_paths
from er_assets.pipeline.handoff import event_metadata, latest_result
from er_assets_tests.helpers import local_sql, run_stages, seed

DOMAIN = "customers"
PARTITION = "2026-11-28"
RECORDS = 300


def run(config, instance, stages, run_config=None):
    return run_stages(config, instance, DOMAIN, stages, PARTITION, run_config)


def target() -> list[tuple]:
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        return con.execute(
            'SELECT customer_id, "MatchID", loaded_at FROM customers_resolved WHERE partition_key = ? ORDER BY 1',
            [PARTITION],
        ).fetchall()
    finally:
        con.close()


def latest(instance, stage: str) -> dict:
    """The stage's latest result for the partition, materialised or blocked by its checks."""
    return event_metadata(latest_result(instance, dg.AssetKey([DOMAIN, stage]), PARTITION))


def output_folder(instance):
    return local_paths()["objects"] / latest(instance, "matched")["output_uri"][len("s3://") :]


def damage_deleted(folder):
    shutil.rmtree(folder)


def damage_emptied(folder):
    for f in folder.iterdir():
        f.unlink()


def damage_header_only(folder):
    for f in folder.glob("*.csv"):
        f.write_text(f.read_text().splitlines()[0] + "\n")


def damage_cut_mid_record(folder):
    for f in folder.glob("*.csv"):
        text = f.read_text()
        f.write_text(text[: len(text) // 2])  # a partial upload: the last line is cut short


def damage_lines_lost(folder):
    for f in folder.glob("*.csv"):
        lines = f.read_text().splitlines(keepends=True)
        f.write_text("".join(lines[:-10]))  # cut at a line end: readable, but 10 records short


@pytest.mark.parametrize(
    "damage, why",
    [
        (damage_deleted, "has no data files"),
        (damage_emptied, "has no data files"),
        (damage_header_only, "has no rows"),
        (damage_cut_mid_record, "cannot be read"),
    ],
)
def test_a_damaged_match_output_is_refused_and_the_good_partition_stays(config, local_env, instance, damage, why):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    assert run(config, instance, ["extract", "matched", "loaded"]).success
    good = target()
    assert len(good) == RECORDS
    damage(output_folder(instance))
    code, reason = exit_code_for(run(config, instance, ["loaded"]))
    assert code == exit_codes.DQ_GATE_FAILED
    assert "UpstreamRefused: match output s3://" in reason and why in reason
    assert reason.endswith(
        f"refused, partition {PARTITION} of customers_resolved left untouched. "
        "Re-run the matching stage (autosys-bridge run ... process)"
    )
    assert target() == good  # same rows, same load time: not even rewritten


def test_an_output_shorter_than_matched_recorded_fails_its_check_before_the_swap(config, local_env, instance):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    assert run(config, instance, ["extract", "matched", "loaded"]).success
    good = target()
    damage_lines_lost(output_folder(instance))
    result = run(config, instance, ["loaded"])
    assert exit_code_for(result)[0] == exit_codes.DQ_GATE_FAILED
    failed = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(failed) >= {"row_count"}
    assert failed["row_count"].description.startswith(f"{RECORDS - 10} rows with ")
    assert f"for the {RECORDS} rows with " in failed["row_count"].description
    assert latest(instance, "loaded")["replaced"] is False
    assert target() == good


def test_a_match_output_of_an_older_extract_is_refused_unless_overridden(config, local_env, instance):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    assert run(config, instance, ["extract", "matched", "loaded"]).success
    good = target()
    stale_job = latest(instance, "matched")["job_id"]
    # The source is corrected and re-extracted; the matching stage has not run on it yet.
    local_sql(
        "UPDATE customers_source SET email = 'fixed.' || email WHERE customer_id IN "
        "(SELECT customer_id FROM customers_source ORDER BY 1 LIMIT 5)"
    )
    assert run(config, instance, ["extract"]).success
    new_extract = instance.fetch_materializations(dg.AssetKey([DOMAIN, "extract"]), limit=1).records[0].run_id

    code, reason = exit_code_for(run(config, instance, ["loaded"]))
    assert code == exit_codes.DQ_GATE_FAILED
    assert reason.startswith(
        f"UpstreamRefused: stale upstream: {DOMAIN}/matched partition {PARTITION} was made from "
        f"extract run {latest(instance, 'matched')['extract_run_id']}, but the latest extract is "
        f"run {new_extract}. Re-run matched on the latest extract"
    )
    assert target() == good

    overridden = run(
        config,
        instance,
        ["loaded"],
        run_config={
            "ops": {
                f"{DOMAIN}__loaded": {
                    "config": {
                        "override_gate": True,
                        "override_reason": "INC-7: yesterday's matches, reviewed",
                        "override_by": "ops",
                    }
                }
            }
        },
    )
    assert overridden.success
    record = latest(instance, "loaded")
    assert record["lineage_override"]["reason"] == "INC-7: yesterday's matches, reviewed"
    assert record["lineage_override"]["latest_extract"] == new_extract and record["job_id"] == stale_job

    # Matching the latest extract reopens the gate.
    assert run(config, instance, ["matched", "loaded"]).success
    assert "lineage_override" not in latest(instance, "loaded")


def test_matching_refuses_an_extract_whose_files_are_gone(config, local_env, instance):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    assert run(config, instance, ["extract"]).success
    shutil.rmtree(local_paths()["objects"] / latest(instance, "extract")["uri"][len("s3://") :])
    code, reason = exit_code_for(run(config, instance, ["matched"]))
    assert code == exit_codes.DQ_GATE_FAILED
    assert "the files of its latest extract" in reason and "are gone from s3://" in reason
    assert not list((local_paths()["emulator"] / "jobs").glob("*.json"))  # no job started


def test_an_unchanged_re_extract_reuses_the_extract_and_so_its_job(config, local_env, instance):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    first = run(config, instance, ["extract", "matched"])
    assert first.success
    job = latest(instance, "matched")["job_id"]
    again = run(config, instance, ["extract", "matched"])
    assert again.success
    extract = latest(instance, "extract")
    assert extract["reused_extract"] is True and extract["extract_run_id"] == first.run_id
    assert extract["uri"].endswith(f"/run={first.run_id}/")
    assert latest(instance, "matched")["job_id"] == job and latest(instance, "matched")["reused_job"] is True
    # One changed value is a new slice: a new extract, and a new job for it.
    local_sql(
        "UPDATE customers_source SET city = city || 'x' "
        "WHERE customer_id = (SELECT min(customer_id) FROM customers_source)"
    )
    assert run(config, instance, ["extract", "matched"]).success
    assert "reused_extract" not in latest(instance, "extract")
    assert latest(instance, "matched")["job_id"] != job
    assert len(list((local_paths()["emulator"] / "jobs").glob("*.json"))) == 2


def test_a_re_extract_under_other_dq_settings_profiles_the_slice_again(config, local_env, instance, tmp_path):
    """The same rows, but a newly required field: the earlier profile never measured it, so
    the slice is extracted and profiled again instead of reused."""
    from er_assets.config import load_config
    from er_assets_tests.helpers import write_config

    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    first = run(config, instance, ["extract"])
    assert first.success
    stricter = load_config(
        write_config(tmp_path, lambda raw: raw["domains"][DOMAIN]["dq"]["required_fields"].append("city"))
    )
    assert run(stricter, instance, ["extract"]).success
    extract = latest(instance, "extract")
    assert "reused_extract" not in extract and extract["extract_run_id"] != first.run_id
    assert "city" in extract["profile"]["null_counts"]


def test_the_intent_identifies_the_job_started_after_it(config, local_env):
    from er_assets.pipeline.matching_job import Patience, adoptable_job, start_intent
    from er_assets.resources.local import local_resources

    seed(config.domain(DOMAIN), PARTITION, 50, local_env)
    er, _ = local_resources(config)["entity_resolution"].clients()
    workflow = config.domain(DOMAIN).workflow_name
    patience = Patience(60, 1, print)
    intent = start_intent(er, workflow, patience)
    assert adoptable_job(er, workflow, intent, set(), patience) is None  # the start never reached the service
    job = er.start_matching_job(workflowName=workflow)["jobId"]
    assert adoptable_job(er, workflow, intent, set(), patience) == job
    assert adoptable_job(er, workflow, intent, {job}, patience) is None  # another partition recorded it as its own
    assert adoptable_job(er, workflow, start_intent(er, workflow, patience), set(), patience) is None  # known before


def test_a_corrupt_job_state_file_is_named_and_a_rerun_recovers(config, local_env):
    import json
    import signal
    import subprocess
    import sys

    seed(config.domain("vendors"), "2026-10-01", 200, local_env)
    bridge = [
        sys.executable,
        "-m",
        "autosys_bridge.cli",
        "run",
        "vendors",
        "process",
        "--date",
        "2026-10-15",
        "--check-interval",
        "1",
    ]
    assert (
        subprocess.run([*bridge[:4], "vendors", "extract", "--date", "2026-10-15"], capture_output=True).returncode == 0
    )
    proc = subprocess.Popen(
        bridge,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, FAULTS_ENV: '{"job": {"running_seconds": 3}}'},
    )
    for line in proc.stderr:
        if "started matching job" in line:
            break
    [state] = (local_paths()["emulator"] / "jobs").glob("*.json")
    job_id = state.stem
    os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)  # the job is provably not running
    state.write_text('{"jobId": "' + job_id + '", "status": "RUNN')  # and its state is cut short
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_codes.STAGE_FAILED
    last = err.strip().splitlines()[-1]
    assert (
        f"matching job {job_id} of vendor-matching-workflow FAILED: job {job_id}: state file {state} is corrupt" in last
    )
    assert "Traceback" not in err

    again = subprocess.run(bridge, capture_output=True, text=True, timeout=120)
    assert again.returncode == exit_codes.OK, again.stderr[-2000:]
    assert len(list((local_paths()["emulator"] / "jobs").glob("*.json"))) == 2
    assert (state.parent / f"{job_id}.json.corrupt").exists()


def test_the_staging_folders_of_killed_extracts_are_removed_by_the_next_extract(config, local_env, instance):
    seed(config.domain(DOMAIN), PARTITION, RECORDS, local_env)
    partition = local_paths()["objects"] / f"er-data-lake/entity-resolution/{DOMAIN}/extract/partition={PARTITION}"
    dead = partition / ".run=0b1c.99999999.5f0e"  # its process is gone
    live = partition / f".run=7d2a.{os.getpid()}.9c3b"  # a concurrent extract, still running
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "data_0.parquet").write_bytes(b"half written")
    assert run(config, instance, ["extract"]).success
    assert not dead.exists() and live.exists()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        # sqlite3's (and DuckDB's) OperationalError means a bad query, not an outage.
        ("sqlite3.OperationalError('no such table: er_sla')", exit_codes.STAGE_FAILED),
        (
            "snowflake_errors.OperationalError('250001: Could not connect to Snowflake backend')",
            exit_codes.SERVICE_UNAVAILABLE,
        ),
    ],
)
def test_an_error_maps_by_its_type_not_its_name(config, local_env, instance, monkeypatch, error, code):
    import sqlite3  # noqa: F401 (named by the parameters)

    from snowflake.connector import errors as snowflake_errors  # noqa: F401

    from er_assets.history import HistoryStore
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    seed(config.domain(DOMAIN), PARTITION, 10, local_env)
    raised = eval(error)  # one of the two above

    def broken(*args, **kwargs):
        raise raised

    monkeypatch.setattr(DuckDBWarehouse, "unload_extract", broken)
    result = run(config, instance, ["extract"])
    assert exit_code_for(result) == (code, f"OperationalError: {raised}")
    with HistoryStore.from_env() as history:
        (row,) = history.rows()
    assert row.exit_code == code  # the history and the bridge agree
