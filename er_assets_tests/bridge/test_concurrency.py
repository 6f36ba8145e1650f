"""Stages at the same time on the local deployment: different domains, two loads, two
matching stages, a backfill launched through Dagster, two bridges on a fresh DAGSTER_HOME.

DuckDB lets one process at a time open the warehouse file. To make the overlap certain
rather than lucky, most tests hold that lock themselves while the bridges start.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest

from autosys_bridge import cli
from er_assets import exit_codes
from er_assets.emulator.faults import FAULTS_ENV
from er_assets.errors import ServiceUnavailable
from er_assets.resources.warehouses.local import DuckDBWarehouse
from er_assets.stages import job_name
from er_assets_tests.helpers import seed

BRIDGE = [sys.executable, "-m", "autosys_bridge.cli", "run"]
HOLD = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
    "time.sleep(float(sys.argv[2]))"
)


WAITING = "waiting up to 600s for the local warehouse"


@contextlib.contextmanager
def warehouse_locked(path, seconds: float = 120):
    """Another process holding the warehouse file, for at most `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        yield
    finally:
        holder.kill()
        holder.wait()


def start(*args, env=None):
    proc = subprocess.Popen(
        [*BRIDGE, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    proc.seen = []
    return proc


def until(proc, text: str) -> None:
    """Read the bridge's log until `text` (it blocks on the lock meanwhile, so it logs little)."""
    for line in proc.stderr:
        proc.seen.append(line)
        if text in line:
            return
    raise AssertionError("".join(proc.seen)[-3000:])


def finish(*procs, timeout=180):
    done = []
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        done.append((proc.returncode, "".join(getattr(proc, "seen", [])) + err))
    return done


def while_locked(path, procs) -> list:
    """Hold the warehouse until every bridge says it waits for it, then let them all go."""
    with warehouse_locked(path):
        for proc in procs:
            until(proc, WAITING)
    return finish(*procs)


def target(local_env, table="customers_resolved"):
    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT count(*), count(DISTINCT customer_id) FROM {table}").fetchone()
    finally:
        con.close()


def test_two_domains_extract_at_once_and_wait_for_the_warehouse(config, local_env):
    seed(config.domain("customers"), "2026-11-28", 500, local_env)
    seed(config.domain("products"), "2026-11-22", 300, local_env)
    procs = [
        start("customers", "extract", "--date", "2026-11-28"),
        start("products", "extract", "--date", "2026-11-22"),
    ]
    for code, err in while_locked(local_env / "warehouse.duckdb", procs):
        assert code == exit_codes.OK, err[-2000:]
        assert WAITING in err and "in use by" in err


def test_two_loads_at_once_both_succeed_without_duplicates(config, local_env):
    seed(config.domain("customers"), "2026-11-28", 400, local_env)
    code, err = finish(start("customers", "all", "--date", "2026-11-28", "--check-interval", "1"))[0]
    assert code == exit_codes.OK, err[-2000:]
    outcomes = while_locked(
        local_env / "warehouse.duckdb", [start("customers", "load", "--date", "2026-11-28") for _ in range(2)]
    )
    assert [code for code, _ in outcomes] == [exit_codes.OK, exit_codes.OK], outcomes
    assert target(local_env) == (400, 400)


def test_two_matching_stages_at_once_start_one_job(config, local_env):
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    code, err = finish(start("vendors", "extract", "--date", "2026-10-15"))[0]
    assert code == exit_codes.OK, err[-2000:]
    slow = {FAULTS_ENV: '{"job": {"running_seconds": 2}}'}
    outcomes = finish(
        *(start("vendors", "process", "--date", "2026-10-15", "--check-interval", "1", env=slow) for _ in range(2))
    )
    assert [code for code, _ in outcomes] == [exit_codes.OK, exit_codes.OK], outcomes
    assert len(list((local_env / "emulator" / "jobs").glob("*.json"))) == 1


def test_a_warehouse_locked_too_long_is_a_clear_service_error(local_env):
    path = local_env / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    warehouse = DuckDBWarehouse(path=str(path), objects_root=str(local_env / "s3"), lock_timeout=0.5)
    with warehouse_locked(path, 10), pytest.raises(ServiceUnavailable) as refused, warehouse.connect():
        pass
    assert f"the local warehouse {path} stayed locked by " in str(refused.value)
    assert "(PID " in str(refused.value) and "for more than 0.5s" in str(refused.value)
    assert ServiceUnavailable.exit_code == exit_codes.SERVICE_UNAVAILABLE


def test_two_bridges_on_a_fresh_dagster_home(config, local_env, tmp_path):
    seed(config.domain("customers"), "2026-11-28", 200, local_env)
    seed(config.domain("products"), "2026-11-22", 200, local_env)
    fresh = {"DAGSTER_HOME": str(tmp_path / "fresh_home")}
    outcomes = finish(
        start("customers", "extract", "--date", "2026-11-28", env=fresh),
        start("products", "extract", "--date", "2026-11-22", env=fresh),
    )
    for code, err in outcomes:
        assert code == exit_codes.OK, err[-2000:]
        assert "Traceback" not in err
    with dg.DagsterInstance.from_config(fresh["DAGSTER_HOME"]) as instance:
        assert sorted(r.status.value for r in instance.get_runs()) == ["SUCCESS", "SUCCESS"]


BACKFILL_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def test_a_three_partition_backfill_through_dagster_runs_at_once_and_succeeds(config, local_env):
    days = ["2026-11-26", "2026-11-27", "2026-11-28"]
    for day in days:
        seed(config.domain("customers"), day, 300, local_env)
    home = local_env / "dagster_home"
    (home / "dagster.yaml").write_text(BACKFILL_YAML)  # runs launch at once, no daemon needed
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "backfill",
            "-m",
            "er_assets.defs.definitions",
            "-j",
            job_name("customers"),
            "--partitions",
            ",".join(days),
            "--noprompt",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 240
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            runs = instance.get_runs()
            if len(runs) == 3 and all(r.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, [(r.tags.get("dagster/partition"), r.status) for r in runs]
            time.sleep(1)
        assert sorted((r.tags["dagster/partition"], r.status.value) for r in runs) == [(d, "SUCCESS") for d in days]
        # They ran at the same time: each run started before another had ended.
        stats = [instance.get_run_stats(r.run_id) for r in runs]
        assert sum(
            1 for a in stats for b in stats if a is not b and a.start_time < b.end_time and b.start_time < a.end_time
        )
    assert target(local_env) == (900, 900)
    # Loads of a domain take turns on the entity registry, whatever order they came in: replaying
    # the three partitions in order from scratch moves no entity id.
    ids = entity_ids(local_env)
    assert len(ids) == 900 and None not in {e for _, e in ids}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["entities", "rebuild", "customers"]) == exit_codes.OK
    assert "replayed 3 partitions (2026-11-26 to 2026-11-28); 900 records, 0 changed entity" in out.getvalue()
    assert entity_ids(local_env) == ids


def entity_ids(local_env):
    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT customer_id, entity_id FROM customers_resolved ORDER BY 1").fetchall()
    finally:
        con.close()
