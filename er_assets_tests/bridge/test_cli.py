"""`autosys-bridge run` as AutoSys calls it: a subprocess, judged by its exit code."""

import json
import os
import signal
import subprocess
import sys

import dagster as dg
import pytest

from er_assets import exit_codes
from er_assets.config import DEFAULT_CONFIG_PATH
from er_assets_tests.helpers import seed, write_config

BRIDGE = [sys.executable, "-m", "autosys_bridge.cli"]


def bridge(*args, env=None, timeout=120):
    return subprocess.run(
        [*BRIDGE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )


def runs(local_env, with_job=False):
    with dg.DagsterInstance.from_config(str(local_env / "dagster_home")) as instance:
        return [
            (r.status.value, r.tags, r.job_name) if with_job else (r.status.value, r.tags) for r in instance.get_runs()
        ]


def test_success_is_exit_zero_and_the_run_is_in_the_instance_with_its_tags(config, local_env):
    seed(config.domain("customers"), "2026-11-28", 500, local_env)
    done = bridge(
        "run", "customers", "all", "--date", "2026-11-28", env={"AUTO_JOB_NAME": "ER_CUSTOMER_BOX", "AUTORUN": "4242"}
    )
    assert done.returncode == exit_codes.OK, done.stderr[-2000:]
    assert "success (exit 0)" in done.stderr
    [(status, tags, job)] = runs(local_env, with_job=True)
    assert status == "SUCCESS" and job == "ER_customers"  # the domain's job, not __ASSET_JOB
    assert tags["autosys/job_name"] == "ER_CUSTOMER_BOX" and tags["autosys/run_number"] == "4242"
    assert (tags["domain"], tags["stage"], tags["dagster/partition"], tags["er/trigger"]) == (
        "customers",
        "all",
        "2026-11-28",
        "autosys",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "xyz", "extract"], "Domain 'xyz' not found in configuration"),
        (["run", "customers", "extract", "--date", "2026-13-01"], "is not a date"),
        (["run", "customers", "transform"], "invalid choice: 'transform'"),
        (["run", "customers", "process", "--timeout", "-5"], "is not a positive number of seconds"),
        (["run", "vendors", "load", "--date", "2019-01-01"], "before the first partition of domain 'vendors'"),
        (["run", "customers", "extract", "--config", "/nonexistent.yaml"], "cannot read configuration"),
    ],
)
def test_bad_usage_is_exit_two_with_one_line(local_env, args, message):
    done = bridge(*args)
    assert done.returncode == exit_codes.USAGE
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_dry_run_prints_the_dagster_command_and_does_nothing(local_env):
    done = bridge("run", "products", "process", "--date", "2026-11-25", "--timeout", "600", "--dry-run")
    assert done.returncode == exit_codes.OK
    command, _, rest = done.stdout.partition("\n")
    assert command.startswith(
        f"ER_CONFIG={DEFAULT_CONFIG_PATH} dagster asset materialize -m er_assets.defs.definitions "
        "--select products/matched --partition 2026-11-22 --config-json"
    )
    assert json.loads(rest)["run_config"] == {"ops": {"products__matched": {"config": {"execution_timeout": 600}}}}
    assert runs(local_env) == []


def test_failed_dq_gate_is_exit_three(config, local_env, tmp_path):
    path = write_config(tmp_path, lambda raw: raw["domains"]["vendors"]["dq"].update(min_records=10_000))
    seed(config.domain("vendors"), "2026-10-01", 200, local_env)
    done = bridge("run", "vendors", "all", "--date", "2026-10-15", "--config", str(path))
    assert done.returncode == exit_codes.DQ_GATE_FAILED, done.stderr[-2000:]
    assert "vendors/extract:min_records" in done.stderr


def test_failed_stage_is_exit_one(local_env):
    done = bridge("run", "products", "load", "--date", "2026-11-22")
    assert done.returncode == exit_codes.STAGE_FAILED
    assert "products/matched has not been materialised for partition 2026-11-22" in done.stderr


def test_timeout_is_exit_four_and_names_the_job(config, local_env):
    # Large enough that matching outlives a one-second EXECUTION_TIMEOUT even on a fast machine.
    seed(config.domain("customers"), "2026-11-28", 400_000, local_env)
    assert bridge("run", "customers", "extract", "--date", "2026-11-28").returncode == 0
    done = bridge("run", "customers", "process", "--date", "2026-11-28", "--timeout", "1", "--check-interval", "1")
    assert done.returncode == exit_codes.TIMEOUT, done.stderr[-2000:]
    assert "still" in done.stderr and "after EXECUTION_TIMEOUT=1s" in done.stderr


def test_sigterm_cancels_the_run_cleanly(config, local_env):
    seed(config.domain("customers"), "2026-11-28", 60_000, local_env)
    # A slow job: the signal lands while the bridge polls, however late this test reads the log.
    slow = {**os.environ, "ER_EMULATOR_FAULTS": '{"job": {"running_seconds": 60}}'}
    proc = subprocess.Popen(
        [*BRIDGE, "run", "customers", "all", "--date", "2026-11-28"],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stdout:  # wait until matching has started, then kill as AutoSys would
        seen.append(line)
        if "started matching job" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.TERMINATED, "".join(seen) + rest
    [(status, _)] = runs(local_env)
    assert status == "CANCELED"
    # Nothing was loaded: the target table does not even exist yet.
    import duckdb

    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    assert (
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers_resolved'"
        ).fetchone()[0]
        == 0
    )


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); sys.argv = ['autosys-bridge', '--help']\n"
        "from autosys_bridge import cli\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('dagster', 'duckdb', 'boto3', 'pandas')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "Exit codes:" in done.stdout


def test_killed_bridge_then_rerun_gives_one_job_and_a_correct_result(config, local_env):
    """kill -9 while matching: the job runs on (the service has no cancel); the re-run of the
    stage re-attaches to it or reuses it, frees the dead run's matching slot, and loads once."""
    seed(config.domain("customers"), "2026-11-28", 150_000, local_env)
    proc = subprocess.Popen(
        [*BRIDGE, "run", "customers", "all", "--date", "2026-11-28"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if "started matching job" in line:
            proc.kill()
            break
    proc.wait(timeout=30)
    rerun = bridge("run", "customers", "process", "--date", "2026-11-28", timeout=180)
    assert rerun.returncode == exit_codes.OK, rerun.stderr[-2000:]
    assert "died; closed by a later bridge run" in rerun.stderr
    assert ("re-attaching to matching job" in rerun.stderr) or ("reusing matching job" in rerun.stderr), rerun.stderr[
        -3000:
    ]
    assert len(list((local_env / "emulator" / "jobs").glob("*.json"))) == 1
    assert bridge("run", "customers", "load", "--date", "2026-11-28").returncode == exit_codes.OK
    import duckdb

    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT customer_id) FROM customers_resolved").fetchone() == (
        150_000,
        150_000,
    )
    statuses = sorted(status for status, _ in runs(local_env))
    assert statuses == ["FAILURE", "SUCCESS", "SUCCESS"]


def test_report_renders_the_history_and_says_when_the_database_is_down(tmp_path):
    from er_assets.history import HistoryStore
    from er_assets.ops.history_seed import seed_history

    url = f"sqlite:///{tmp_path}/history.db"
    with HistoryStore.from_url(url) as store:
        seed_history(store, days=90)
    out = tmp_path / "report.html"
    done = bridge("report", "--url", url, "--days", "90", "-o", str(out))
    assert done.returncode == exit_codes.OK, done.stderr
    html = out.read_text()
    assert "<svg" in html and 'id="sla"' in html and "customers" in html
    assert 'src="http' not in html and "<link" not in html  # readable offline: nothing fetched
    down = bridge("report", "--url", "postgresql://nobody@127.0.0.1:1/history", "-o", str(tmp_path / "x.html"))
    assert down.returncode == exit_codes.SERVICE_UNAVAILABLE
    assert down.stderr.count("\n") == 1 and "cannot connect to the job history database" in down.stderr
    assert not (tmp_path / "x.html").exists()


def test_bad_deployment_setting_is_a_usage_error(local_env):
    done = bridge("run", "customers", "extract", "--date", "2026-11-28", env={"ER_DEPLOYMENT": "staging"})
    assert done.returncode == exit_codes.USAGE
    assert "ER_DEPLOYMENT='staging': expected one of local, production" in done.stderr
    assert "Traceback" not in done.stderr


def test_production_without_a_history_database_says_so(local_env):
    done = bridge("report", "-o", "/dev/null", env={"ER_DEPLOYMENT": "production", "ER_HISTORY_URL": ""})
    assert done.returncode == exit_codes.SERVICE_UNAVAILABLE
    assert "ER_HISTORY_URL must name the job history database in production" in done.stderr
