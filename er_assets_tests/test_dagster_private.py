"""The private Dagster APIs we rely on (all in er_assets/dagster_private.py) still exist and
behave as we use them: each is called for real against a test instance, the way our feature
calls it, and what we read back is checked.

A failure says which private API changed, which of our features depends on it, and where to
look. Some tests reproduce what Dagster itself does (a run launched from a code location, a
step holding a pool slot) through other private calls; when one of those breaks, the message
says it is the test's own setup that needs updating, not necessarily our use.
"""

import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest

from er_assets import dagster_private
from er_assets.defs.location import CODE_LOCATION

MODULE = "er_assets/dagster_private.py"


@pytest.fixture
def instance(disk_instance):
    """The storage our features read these APIs on: SQLite files, as the bridge opens them."""
    return disk_instance


@contextmanager
def relied_on(api: str, feature: str, helper: str) -> Iterator[None]:
    """Turn any failure inside into one message: what changed, what breaks, where to look."""
    try:
        yield
    except Exception as exc:  # AssertionError included: the cause is kept below the message
        raise AssertionError(
            f"A private Dagster API changed (dagster {dg.__version__}): {api}.\n"
            f"Our feature that depends on it: {feature}.\n"
            f"Where to look: {MODULE}, `{helper}`; its docstring says where the API lived in "
            f"dagster 1.13, why no public API serves, and what to check on an upgrade.\n"
            f"What failed: {type(exc).__name__}: {exc}"
        ) from exc


@contextmanager
def staging(what: str) -> Iterator[None]:
    """A failure in the private calls a test uses only to stage what Dagster does."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(
            f"This test's own setup broke on dagster {dg.__version__}: {what}. It uses private "
            f"Dagster calls only to reproduce what Dagster does; update the setup, then see whether "
            f"our use in {MODULE} still holds.\nWhat failed: {type(exc).__name__}: {exc}"
        ) from exc


# --- 1. the gate: the latest evaluated check result of one partition ----------------------------

GATE_API = (
    "DagsterInstance.event_log_storage.get_asset_check_execution_history(check_key, limit=1, "
    "status={AssetCheckExecutionRecordStatus.SUCCEEDED, .FAILED}, partition_filter=PartitionKeyFilter(key=...)) "
    "and the record's .evaluation"
)
GATE_FEATURE = (
    "the data-quality gate across runs (er_assets/pipeline/gate.py `failing_checks`: a stage refuses an "
    "upstream partition whose latest blocking check failed); without it the gate may open on bad data"
)

PARTS = dg.StaticPartitionsDefinition(["a", "b", "c"])


class ToyConfig(dg.Config):
    stop_before_check: bool = False


# Partitioned like our stages' checks (checks.specs), a preview feature in Dagster 1.13: only a
# partitioned check spec records each evaluation under its partition.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    ROWS = dg.AssetCheckSpec("rows", asset="toy", blocking=True, partitions_def=PARTS)


@dg.asset(partitions_def=PARTS, check_specs=[ROWS])
def toy(context: dg.AssetExecutionContext, config: ToyConfig):
    if config.stop_before_check:
        raise RuntimeError("the step stops before its check is evaluated")
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="rows",
        passed=context.partition_key != "a",
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"rows of {context.partition_key}",
    )


def test_the_gate_reads_the_latest_evaluated_check_result_of_one_partition(instance):
    key = dg.AssetCheckKey(dg.AssetKey("toy"), "rows")
    dg.materialize([toy], instance=instance, partition_key="a", raise_on_error=False)  # fails its check
    dg.materialize([toy], instance=instance, partition_key="b", raise_on_error=False)  # passes, later
    # A later run of "a" plans the check but stops before evaluating it: the failure must stand.
    dg.materialize(
        [toy],
        instance=instance,
        partition_key="a",
        raise_on_error=False,
        run_config=dg.RunConfig(ops={"toy": ToyConfig(stop_before_check=True)}),
    )
    with staging("the newest execution of the check should be the unevaluated (PLANNED) one of 'a'"):
        newest = instance.get_latest_asset_check_evaluation_record(key)
        assert newest is not None and newest.status.value == "PLANNED" and newest.partition == "a", newest

    with relied_on(GATE_API, GATE_FEATURE, "latest_check_evaluation"):
        failed = dagster_private.latest_check_evaluation(instance, key, "a")
        assert isinstance(failed, dg.AssetCheckEvaluation), f"partition a: {failed!r}"
        assert (failed.passed, failed.severity, failed.description) == (False, dg.AssetCheckSeverity.ERROR, "rows of a")
        passed = dagster_private.latest_check_evaluation(instance, key, "b")
        assert isinstance(passed, dg.AssetCheckEvaluation) and passed.passed, f"partition b: {passed!r}"
        assert dagster_private.latest_check_evaluation(instance, key, "c") is None, "partition c was never evaluated"


# --- 2. the job page's tag -------------------------------------------------------------------------


def test_the_job_page_tag_is_the_one_dagster_sets_on_runs_of_our_code_location(instance):
    with staging("storing a run as if launched from code location er_assets (DagsterRun, RemoteJobOrigin)"):
        from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
        from dagster._core.storage.dagster_run import DagsterRun

        defs = dg.Definitions(assets=[toy], jobs=[dg.define_asset_job("toy_job")])
        repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(CODE_LOCATION), defs.get_repository_def().name)
        launched = DagsterRun(job_name="toy_job", remote_job_origin=RemoteJobOrigin(repository, "toy_job"))
        instance.add_run(launched)
        instance.add_run(DagsterRun(job_name="toy_job"))  # in-process, untagged: must not match

    with relied_on(
        "REPOSITORY_LABEL_TAG (dagster._core.storage.tags) and SINGLETON_REPOSITORY_NAME "
        "(dagster._core.definitions.repository_definition.valid_definitions), the tag Dagster's "
        "DagsterRun.tags_for_storage puts on code-location runs",
        "in-process runs (bridge, demo) on their job's page in the Dagster UI (er_assets/defs/location.py "
        "`location_tags`); without it they vanish from the job page",
        "job_page_tag",
    ):
        tag = dagster_private.job_page_tag(CODE_LOCATION)
        assert tag == {".dagster/repository": "__repository__@er_assets"}, tag
        found = [run.run_id for run in instance.get_runs(dg.RunsFilter(tags=tag))]
        assert found == [launched.run_id], f"runs Dagster labels as our location's: {found}"


# --- 3. box-run state: the instance's key-value table --------------------------------------------


def test_box_run_values_written_by_one_instance_are_read_by_another(instance, local_env):
    with relied_on(
        "DagsterInstance.run_storage.get_cursor_values({key}) and .set_cursor_values({key: value})",
        "one partition per AutoSys box run (autosys_bridge/box_run.py `pinned`, docs/jil.md): a late restart "
        "would otherwise work on another partition than its box run",
        "read_instance_value / write_instance_value",
    ):
        key = "er/autosys-box-run/test/customers/4711"
        assert dagster_private.read_instance_value(instance, key) is None
        dagster_private.write_instance_value(instance, key, '{"partition": "2026-11-27"}')
        dagster_private.write_instance_value(instance, key, '{"partition": "2026-11-28"}')  # replaces
        # Each bridge job is its own process with its own instance on the shared storage.
        with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as later_job:
            assert dagster_private.read_instance_value(later_job, key) == '{"partition": "2026-11-28"}'
            assert dagster_private.read_instance_value(later_job, key + "0") is None


# --- 4. a dead run's concurrency slots -------------------------------------------------------------


def test_a_dead_runs_pool_slot_is_freed_for_the_next_step(instance):
    pool = "matching"
    with staging("a pool of one slot held by a dead run's step, another step waiting (claim_concurrency_slot)"):
        storage = instance.event_log_storage
        assert storage.supports_global_concurrency_limits
        storage.set_concurrency_slots(pool, 1)
        assert storage.claim_concurrency_slot(pool, "dead-run", "matched").is_claimed
        assert not storage.claim_concurrency_slot(pool, "next-run", "matched").is_claimed

    with relied_on(
        "DagsterInstance.event_log_storage.free_concurrency_slots_for_run(run_id)",
        "closing a dead bridge's run (autosys_bridge/runner.py `_reclaim_dead_runs`): without it the dead run "
        "keeps the matching pool's slot and every later matching step waits forever",
        "free_concurrency_slots_for_run",
    ):
        dagster_private.free_concurrency_slots_for_run(instance, "dead-run")
        holders = [slot.run_id for slot in storage.get_concurrency_info(pool).claimed_slots]
        assert holders == [], f"slots still held by {holders}"
        assert storage.claim_concurrency_slot(pool, "next-run", "matched").is_claimed, "the waiting step got no slot"


# --- the module itself ------------------------------------------------------------------------------


def test_importing_the_module_and_its_bridge_callers_imports_no_dagster():
    """The bridge imports dagster_private at start-up; Dagster must come only with a call."""
    code = (
        "import sys\nimport er_assets.dagster_private, autosys_bridge.box_run, autosys_bridge.runner\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'dagster'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", (
        f"{MODULE} or a bridge module now imports dagster at import time: keep Dagster imports inside functions"
    )
