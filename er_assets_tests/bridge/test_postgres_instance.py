"""The production Dagster instance for real: docs/dagster.yaml (the documented file itself,
linked into DAGSTER_HOME) against a real PostgreSQL server, compute logs into S3 (moto's
server), the job history in Postgres too.

AutoSys runs stages of several domains at once from several hosts; this starts two bridge
processes at once, for two domains, and checks that the matching pool lets one matching step
run at a time across processes, and that runs, events, history rows and compute logs of both
are complete.
"""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg

from er_assets import exit_codes
from er_assets_tests.helpers import DOCS_DAGSTER_YAML, LOG_BUCKET, seed

pytest_plugins = ["er_assets_tests.postgres"]

BRIDGE = [sys.executable, "-m", "autosys_bridge.cli"]
RECORDS = 1000
PARTITIONS = {"customers": "2026-11-28", "products": "2026-11-22"}
# A slot holder that is neither bridge: the test itself, standing in for a third host.
HOLDER_RUN, HOLDER_STEP = "held-by-the-test", "customers__matched"


def _step_times(instance, run_id: str, step_key: str) -> tuple[float, float]:
    events = instance.all_logs(run_id)
    start = [
        e.timestamp for e in events if e.step_key == step_key and e.dagster_event_type == dg.DagsterEventType.STEP_START
    ]
    end = [
        e.timestamp
        for e in events
        if e.step_key == step_key and e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS
    ]
    assert len(start) == 1 and len(end) == 1, f"{step_key} of {run_id}: starts {start}, successes {end}"
    return start[0], end[0]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_domains_at_once_on_the_documented_postgres_instance(config, local_env, postgres_home, moto_s3):
    from er_assets.defs.definitions import build_definitions
    from er_assets.history import HistoryStore

    for name, partition in PARTITIONS.items():
        seed(config.domain(name), partition, RECORDS, local_env)
    pool = config.settings.concurrency_pool
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # The extracts, in this process: the local warehouse is one DuckDB file, which allows
        # one writing process at a time.
        job = build_definitions(config).resolve_implicit_global_asset_job_def()
        for name, partition in PARTITIONS.items():
            done = job.execute_in_process(
                instance=instance,
                partition_key=partition,
                raise_on_error=False,
                asset_selection=[dg.AssetKey([name, "extract"])],
            )
            assert done.success, name

        # Hold the pool's only slot, then start both matching stages at once.
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(pool)
        assert storage.claim_concurrency_slot(pool, HOLDER_RUN, HOLDER_STEP).is_claimed
        bridges = {
            name: subprocess.Popen(
                [*BRIDGE, "run", name, "process", "--date", partition],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, partition in PARTITIONS.items()
        }
        try:
            _wait_for(
                lambda: storage.get_concurrency_info(pool).pending_step_count == 2,
                60,
                "both bridges to queue for the matching slot",
            )
            time.sleep(2)  # they keep waiting: neither matching step starts while the slot is held
            started = [
                e
                for r in instance.get_runs()
                for e in instance.all_logs(r.run_id)
                if e.dagster_event_type == dg.DagsterEventType.STEP_START and "matched" in (e.step_key or "")
            ]
            assert started == []
            storage.free_concurrency_slot_for_step(HOLDER_RUN, HOLDER_STEP)
            outcomes = {name: (proc.wait(timeout=300), proc.stderr.read()) for name, proc in bridges.items()}
        finally:
            for proc in bridges.values():
                proc.kill()
        for name, (code, stderr) in outcomes.items():
            assert code == exit_codes.OK, f"{name}: {stderr[-3000:]}"

        runs = {r.tags.get("domain"): r for r in instance.get_runs() if r.tags.get("stage") == "process"}
        assert sorted(runs) == sorted(PARTITIONS)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs.values())
        first, second = sorted(_step_times(instance, runs[d].run_id, f"{d}__matched") for d in PARTITIONS)
        assert first[1] <= second[0], "two matching steps ran at the same time"
        assert storage.get_concurrency_info(pool).claimed_slots == []

        for name, run in runs.items():
            [materialisation] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey([name, "matched"]), asset_partitions=[PARTITIONS[name]]),
                limit=5,
            ).records
            assert materialisation.run_id == run.run_id
            logs = moto_s3.list_objects_v2(Bucket=LOG_BUCKET, Prefix=f"compute-logs/storage/{run.run_id}/")
            assert logs.get("KeyCount", 0) > 0, f"no compute logs in S3 for {name}"

    with HistoryStore.from_env() as history:
        rows = {(r.domain, r.stage): r for r in history.rows()}
    assert sorted(rows) == sorted((d, s) for d in PARTITIONS for s in ("extract", "matched"))
    assert all(r.status.value == "SUCCEEDED" and r.record_count == RECORDS for r in rows.values())
    assert {rows[(d, "matched")].run_id for d in PARTITIONS} == {r.run_id for r in runs.values()}


def test_production_md_documents_every_variable_of_the_dagster_yaml():
    import re

    variables = set(re.findall(r"\{env: (\w+)\}", DOCS_DAGSTER_YAML.read_text()))
    production_md = (DOCS_DAGSTER_YAML.parent / "production.md").read_text()
    assert variables and {v for v in variables if f"`{v}`" not in production_md} == set()
    assert "docs/dagster.yaml" in production_md and "postgres_db:" not in production_md
