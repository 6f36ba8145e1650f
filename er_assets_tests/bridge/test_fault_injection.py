"""Kill the real bridge CLI (its process group, SIGKILL and SIGTERM) at every point of a run,
then re-run: the target must be identical to a clean run's, exactly one matching job must
exist per extract, and no history row may stay RUNNING.

The points are found from the bridge's own log, and the emulator's job faults
(ER_EMULATOR_FAULTS) hold a job at the moment that matters (StartMatchingJob accepted but not
answered; a job RUNNING), so every kill lands where it is meant to. Each scenario changes the
source slice (state A <-> B), so each needs a new extract and a new job; the clean results of
A and B come from runs in a separate data folder. Re-runs go through the bridge's `main` in
this process: the killed runs are the real CLI, and the re-runs are the same code without
another interpreter start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from autosys_bridge import cli
from er_assets import exit_codes
from er_assets.emulator.faults import FAULTS_ENV
from er_assets.history import HistoryStore, Status
from er_assets_tests.helpers import seed

DOMAIN, PARTITION, RECORDS = "customers", "2026-11-28", 300
RUN = ["run", DOMAIN, "{stage}", "--date", PARTITION, "--check-interval", "1"]
STEP = f"{DOMAIN}__{{}} - {{}}"  # how Dagster's log names a step event


def to_state(data: Path, state: str) -> None:
    """A: the seeded slice; B: five emails changed. Switching gives a new slice each time."""
    change = "email = 'b.' || email" if state == "B" else "email = regexp_replace(email, '^b[.]', '')"
    con = duckdb.connect(str(data / "warehouse.duckdb"))
    try:
        con.execute(
            f"UPDATE customers_source SET {change} WHERE customer_id IN "
            "(SELECT customer_id FROM customers_source ORDER BY 1 LIMIT 5)"
        )
    finally:
        con.close()


def target(data: Path):
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        if not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers_resolved'"
        ).fetchone()[0]:
            return []
        return con.execute("SELECT * EXCLUDE (loaded_at) FROM customers_resolved ORDER BY customer_id").fetchall()
    finally:
        con.close()


def bridge_in_process(stage: str) -> int:
    return cli.main([a.format(stage=stage) for a in RUN])


def match_first() -> None:
    assert bridge_in_process("extract") == exit_codes.OK
    assert bridge_in_process("process") == exit_codes.OK


def jobs(data: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (data / "emulator" / "jobs").glob("*.json")]


# --- the kill points: (stage the killed bridge runs, environment, when to kill) -----------


def on_line(text: str):
    def reached(line: str, data: Path, known_jobs: int) -> bool:
        return text in line

    return reached


def job_accepted(line: str, data: Path, known_jobs: int) -> bool:
    """StartMatchingJob has created the job and holds its answer (the start delay): the bridge
    has recorded its intent but not the job id."""
    if STEP.format("matched", "ASSET_OBSERVATION") not in line:
        return False
    deadline = time.monotonic() + 20
    while len(jobs(data)) == known_jobs:
        assert time.monotonic() < deadline, "the job never appeared"
        time.sleep(0.02)
    return True


# Mid-load: the load stage is under way and waits for the warehouse, which this test holds
# (a load of a few hundred rows is too quick to hit otherwise); a kill inside a warehouse
# query is test_sigterm_inside_a_warehouse_query.
IN_THE_LOAD = on_line("waiting up to 600s for the local warehouse")
POINTS = {
    "mid-extract": ("all", {}, on_line(STEP.format("extract", "STEP_START"))),
    "between extract and process": ("all", {}, on_line(STEP.format("extract", "STEP_SUCCESS"))),
    "just after the job is accepted": ("all", {FAULTS_ENV: '{"job": {"start_answer_seconds": 5}}'}, job_accepted),
    # Long enough that the kill lands while the job runs even when this test process is
    # descheduled for seconds after reading the line (a loaded CI machine): with 2 s, the run
    # sometimes finished, load included, before the signal was sent.
    "while the job runs": ("all", {FAULTS_ENV: '{"job": {"running_seconds": 8}}'}, on_line("started matching job")),
    "after the job succeeded": ("all", {}, on_line(": SUCCEEDED, ")),
    "mid-re-load over a good load": ("load", {}, IN_THE_LOAD),
    "right after the load": ("load", {}, on_line("loaded 300 rows into")),
}
HOLD = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)"


def kill_at(data: Path, stage: str, env: dict, reached, sig: int, known_jobs: int) -> tuple[int, str]:
    """Run the real CLI in its own process group; send `sig` to the group at the point."""
    holder = None
    if reached is IN_THE_LOAD:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(data / "warehouse.duckdb")], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline().strip() == "locked"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosys_bridge.cli", *[a.format(stage=stage) for a in RUN]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **env},
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if reached(line, data, known_jobs):
                os.killpg(proc.pid, sig)
                break
        else:
            raise AssertionError("the point was never reached:\n" + "".join(seen)[-3000:])
        _, rest = proc.communicate(timeout=120)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    return proc.returncode, "".join(seen) + rest


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The seeded source (state A), and the target after a clean run of state A and of state
    B, from a data folder of their own; computed once for both signals."""
    from er_assets.config import load_config

    root = tmp_path_factory.mktemp("clean")
    data = root / "data"
    with pytest.MonkeyPatch.context() as env:
        use(env, data)
        seed(load_config().domain(DOMAIN), PARTITION, RECORDS, data)
        shutil.copy(data / "warehouse.duckdb", root / "source.duckdb")
        results = {}
        for state in ("A", "B"):
            if state == "B":
                to_state(data, "B")
            assert bridge_in_process("all") == exit_codes.OK
            results[state] = target(data)
    assert results["A"] != results["B"] and len(results["A"]) == RECORDS
    return root / "source.duckdb", results


def use(env, data: Path) -> None:
    for name in ("ER_DEPLOYMENT", "ER_CONFIG", "AUTO_JOB_NAME", "AUTORUN", "ER_HISTORY_URL"):
        env.delenv(name, raising=False)
    env.setenv("ER_DATA_DIR", str(data))
    env.setenv("DAGSTER_HOME", str(data / "dagster_home"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_kill_at_any_point_then_a_rerun_gives_the_clean_result(tmp_path, monkeypatch, clean, sig):
    source, clean_results = clean
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(source, data / "warehouse.duckdb")
    use(monkeypatch, data)

    # The first load of the partition is killed: nothing may be half there.
    match_first()
    code, log = kill_at(data, "load", {}, IN_THE_LOAD, sig, len(jobs(data)))
    assert target(data) == [], log[-3000:]
    after_kill(data, sig, code, log)
    assert bridge_in_process("all") == exit_codes.OK
    assert target(data) == clean_results["A"]

    state = "A"
    for point, (stage, env, reached) in POINTS.items():
        state = "B" if state == "A" else "A"
        to_state(data, state)
        before, job_count = target(data), len(jobs(data))
        if stage == "load":  # the load is a separate AutoSys job: extract and match first
            match_first()
        code, log = kill_at(data, stage, env, reached, sig, job_count)
        # Killed anywhere, the target holds one whole clean result: the previous one, or
        # (killed after the load committed) the new one. Never a mixture.
        assert target(data) in (before, clean_results[state]), f"{point}:\n{log[-3000:]}"
        if point != "right after the load":
            assert target(data) == before, f"{point}: the killed run changed the target:\n{log[-3000:]}"
        after_kill(data, sig, code, log, stage_done=point == "right after the load")

        assert bridge_in_process("all") == exit_codes.OK, point
        assert target(data) == clean_results[state], point
        assert len(jobs(data)) == job_count + 1, f"{point}: one job for the new extract, not two"
        with HistoryStore.from_env() as store:
            assert store.rows(status=Status.RUNNING) == [], point
    with dg.DagsterInstance.get() as instance:
        assert not [r for r in instance.get_runs() if not r.is_finished]


def after_kill(data: Path, sig: int, code: int, log: str, stage_done: bool = False) -> None:
    """What the killed run left: SIGKILL, nothing to say; SIGTERM, a cancelled run, exit 143,
    and the interrupted stage's history row CANCELLED, unless (`stage_done`) the signal came
    after that stage's last write: then its row says SUCCEEDED, which it did."""
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        return
    run_id = log.split(" autosys-bridge: run ")[-1].split(":")[0]
    with dg.DagsterInstance.get() as instance:
        status = instance.get_run_by_id(run_id).status.value
    if code == exit_codes.OK:  # the signal came after the last step ended: the run had succeeded
        assert status == "SUCCESS", log[-3000:]
        return
    assert (code, status) == (exit_codes.TERMINATED, "CANCELED"), log[-3000:]
    assert "terminated by SIGTERM; run cancelled (exit 143)" in log
    with HistoryStore.from_env() as store:
        statuses = {row.status for row in store.rows(run_id=run_id)}
    assert statuses - {Status.SUCCEEDED} == {Status.CANCELLED} or (stage_done and statuses == {Status.SUCCEEDED}), log[
        -3000:
    ]


def test_sigterm_inside_a_warehouse_query_cancels_the_run(config, local_env):
    """DuckDB answers a signal that lands mid-query with "Query interrupted": still a cancel."""
    seed(config.domain(DOMAIN), PARTITION, 600_000, local_env)  # queries long enough to land in, under load too
    partition = local_env / f"s3/er-data-lake/entity-resolution/{DOMAIN}/extract/partition={PARTITION}"
    log = local_env / "bridge.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autosys_bridge.cli", *[a.format(stage="extract") for a in RUN]],
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not list(partition.glob(".run=*")):  # the extract's staging folder: its queries run now
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.01)
        time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == exit_codes.TERMINATED, text[-3000:]
    with HistoryStore.from_env() as store:
        [row] = store.rows()
    assert row.status is Status.CANCELLED
    assert row.error_message == "DagsterExecutionInterruptedError: interrupted by a signal during a warehouse query"
    assert not list(partition.glob(".run=*")) and not list(partition.glob("run=*"))  # nothing half-written


# The real CLI, held inside the entity registry's update: after the undo of the partition's
# earlier application, before the re-application (a few hundred rows go by too fast to hit).
HELD_IN_REGISTRY = """
import sys, time
from er_assets.resources.warehouses import registry
apply_statements = registry.Registry._run
def held(self, statements, params):
    statements = list(statements)
    apply_statements(self, statements, params)
    if any("until_partition = NULL" in s for s in statements):
        print("held inside the registry update", file=sys.stderr, flush=True)
        time.sleep(120)
registry.Registry._run = held
from autosys_bridge.cli import main
sys.exit(main(sys.argv[1:]))
"""
REGISTRY_TABLES = [f"customers_resolved_entity_{t}" for t in ("members", "events", "groups", "keys")]


def registry_state(data: Path) -> dict:
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        return {t: sorted(map(str, con.execute(f"SELECT * FROM {t}").fetchall())) for t in REGISTRY_TABLES}
    finally:
        con.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_kill_inside_the_registry_update_leaves_target_and_registry_as_they_were(tmp_path, monkeypatch, clean, sig):
    source, clean_results = clean
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(source, data / "warehouse.duckdb")
    use(monkeypatch, data)
    assert bridge_in_process("all") == exit_codes.OK
    before, registry_before = target(data), registry_state(data)
    to_state(data, "B")
    match_first()
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD_IN_REGISTRY, *[a.format(stage="load") for a in RUN]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "held inside the registry update" in line:
            os.killpg(proc.pid, sig)
            break
    else:
        raise AssertionError("the registry update was never reached:\n" + "".join(seen)[-3000:])
    _, rest = proc.communicate(timeout=120)
    log = "".join(seen) + rest
    assert (target(data), registry_state(data)) == (before, registry_before), log[-3000:]
    after_kill(data, sig, proc.returncode, log)
    assert bridge_in_process("load") == exit_codes.OK
    assert target(data) == clean_results["B"]
    assert registry_state(data) != registry_before  # the re-run applied the new groups
