"""Every use of a private Dagster API, in one place, so that a Dagster upgrade breaks here and
in er_assets_tests/test_dagster_private.py, loudly, and not silently in the gate.

pyproject.toml pins dagster below 1.14 because of this module. Dagster's public API is what
`dagster/__init__.py` exports and the `DagsterInstance` methods marked `@public` (in
dagster/_core/instance/instance.py); nothing below is either. Each entry names the private
name, where it is in dagster 1.13, why no public API serves, and what to check on an upgrade.

1. The gate: the latest *evaluated* result of an asset check for one partition
   (`latest_check_evaluation`, used by er_assets/pipeline/gate.py).
   - `DagsterInstance.event_log_storage.get_asset_check_execution_history(check_key, limit=,
     status=, partition_filter=)`: dagster/_core/storage/event_log/base.py (abstract) and
     sql_event_log.py (SQLite, Postgres). The UI's GraphQL uses it.
   - `PartitionKeyFilter(key=...)`: dagster/_core/event_api.py.
   - `AssetCheckExecutionRecordStatus.SUCCEEDED/FAILED`: dagster/_core/storage/
     asset_check_execution_record.py; the record's `.evaluation` property, same file, gives
     the public `dg.AssetCheckEvaluation`.
   Why private: the public `DagsterInstance.get_latest_asset_check_evaluation_record(key)`
   (dagster/_core/instance/methods/asset_methods.py) takes no partition and returns the latest
   execution of any status, a PLANNED one included. `DagsterInstance.fetch_*` have no variant
   for check evaluations, and `dg.EventRecordsFilter` cannot select them by asset or partition:
   the event index stores neither for them (`DagsterEvent.asset_key` and `.partition` are None
   for ASSET_CHECK_EVALUATION, dagster/_core/events/__init__.py; `_event_to_row` in
   sql_event_log.py).
   On an upgrade: the method's signature, the two types' modules, and that `.evaluation` of a
   SUCCEEDED/FAILED record is still an `AssetCheckEvaluation`; or a public query per
   partition that replaces them (search the release notes for "asset check" and "partition").
   Related, public but a preview feature in 1.13 (it may change in a patch release): an
   evaluation is stored under its partition only when its `dg.AssetCheckSpec` has
   `partitions_def` (er_assets/pipeline/checks.py `specs`); the test's toy asset uses it too.

2. The job page's tag (`job_page_tag`, used by er_assets/defs/location.py).
   - `REPOSITORY_LABEL_TAG` (".dagster/repository"): dagster/_core/storage/tags.py.
   - `SINGLETON_REPOSITORY_NAME` ("__repository__", the repository a `Definitions` becomes):
     dagster/_core/definitions/repository_definition/valid_definitions.py.
   Dagster sets the tag, `<repository>@<location>`, only on runs launched from a code location
   (`DagsterRun.tags_for_storage`, dagster/_core/storage/dagster_run.py, with
   `RemoteRepositoryOrigin.get_label`, dagster/_core/remote_origin.py); the UI's job page
   filters runs by it. In-process runs (bridge, demo) set it themselves.
   Why private: `dagster/__init__.py` exports neither name. `context.repository_def.name` is
   not `@public` either, and in a `dg.materialize` run it names an ephemeral repository.
   On an upgrade: both constants, and that `tags_for_storage` still labels a code-location
   run with them.

3. Box-run state (`read_instance_value`, `write_instance_value`, used by
   autosys_bridge/box_run.py): `DagsterInstance.run_storage.get_cursor_values(keys)` and
   `.set_cursor_values(mapping)`, the daemons' key-value table (`kvs`), declared by
   `DaemonCursorStorage` in dagster/_core/storage/daemon_cursor.py, implemented in
   dagster/_core/storage/runs/sql_run_storage.py (`instance.daemon_cursor_storage` is the same
   object, no more public).
   Why private: the instance has no public key-value store. Run tags (`add_run_tags`, itself
   not `@public`) need a run, and the record is made before the box run's first Dagster run
   exists; a runless observation (`report_runless_asset_event`, `@public`) would put a fake
   asset per box run into the UI's catalog.
   On an upgrade: both methods, and that values written through one instance are read back
   through another on the same storage (docs/jil.md tells operators the key).

4. Freeing a dead run's concurrency slots (`free_concurrency_slots_for_run`, used by
   autosys_bridge/runner.py): `DagsterInstance.event_log_storage.free_concurrency_slots_for_run
   (run_id)`, dagster/_core/storage/event_log/base.py and sql_event_log.py.
   Why private: no public instance method frees slots. `report_run_failed` leaves them held;
   Dagster frees them itself only by `delete_run` (deleting the run, sql_event_log.py
   `delete_events`) or by the daemon's run monitoring (`free_slots_after_run_end_seconds`,
   dagster/_daemon/monitoring/concurrency.py), and the bridge runs without a daemon.
   On an upgrade: the method, and that it frees the slots a run claimed in a pool.

Dagster is imported inside each function, never at module level: autosys_bridge imports this
module, and the bridge's start-up (`autosys-bridge --help`) must not import dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


def latest_check_evaluation(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partition: str
) -> dg.AssetCheckEvaluation | None:
    """The latest evaluated result (passed or failed) of `check_key` for `partition`, or None
    when it was never evaluated there. Executions planned but never evaluated (a step that
    stopped early) are skipped: the latest evaluated result stands."""
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    records = instance.event_log_storage.get_asset_check_execution_history(
        check_key,
        limit=1,
        status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED},
        partition_filter=PartitionKeyFilter(key=partition),
    )
    return records[0].evaluation if records else None


def job_page_tag(location_name: str) -> dict[str, str]:
    """The tag by which the UI's job page lists a run of a `Definitions` loaded as code location
    `location_name`: Dagster's own key and value, as it sets them on runs it launches."""
    from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    return {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{location_name}"}


def read_instance_value(instance: dg.DagsterInstance, key: str) -> str | None:
    """The value stored under `key` in the instance's key-value table, or None."""
    return instance.run_storage.get_cursor_values({key}).get(key)


def write_instance_value(instance: dg.DagsterInstance, key: str, value: str) -> None:
    """Store `value` under `key` in the instance's key-value table, replacing any value."""
    instance.run_storage.set_cursor_values({key: value})


def free_concurrency_slots_for_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Free every concurrency slot `run_id` holds, and hand them to waiting steps."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
