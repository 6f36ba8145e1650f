"""Recording every stage execution in the job history, whatever started the run.

The record is written by the stage itself (start, then exactly one end), so a run from the
UI, a schedule, a backfill or AutoSys through the bridge is counted the same way, including
runs stopped by a DQ gate or cancelled by SIGTERM. The store is idempotent on (run id,
stage): a retried step never makes a second row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from er_assets.pipeline.checks import blocking_failures
from er_assets.errors import GateClosed, MatchingJobTimeout, exit_code_of, masked_error
from er_assets.history import HistoryStore, Status
from er_assets.redact import scrub_exception


class HistoryResource(dg.ConfigurableResource):
    """Where the job history lives: `sqlite:///file.db` locally, `postgresql://...` in production."""

    url: str
    sla_minutes: dict[str, int] = {}

    def store(self) -> HistoryStore:
        store = HistoryStore.from_url(self.url)
        # The configuration is the SLA's source of truth; the history's er_sla table follows it.
        if self.sla_minutes:
            store.sync_sla(self.sla_minutes)
        return store


def trigger(tags: dict) -> tuple[str, str | None]:
    """(what started the run, the AutoSys job name if AutoSys did)."""
    autosys_job = tags.get("autosys/job_name")
    if autosys_job:
        return f"autosys:{autosys_job}", autosys_job
    if tags.get("dagster/schedule_name"):
        return f"schedule:{tags['dagster/schedule_name']}", None
    if tags.get("dagster/backfill"):
        return f"backfill:{tags['dagster/backfill']}", None
    if tags.get("er/trigger") in ("cli", "demo"):
        return tags["er/trigger"], None
    return "ui", None


def stage_tag(stages: set[str]) -> str:
    """The bridge's name for a set of stages: `extract`, `process`, `load`, `all`, or a
    `+`-joined subset such as `process+load` (a UI selection of two assets)."""
    from autosys_bridge.cli import STAGES

    if stages >= set(STAGES["all"]):
        return "all"
    single = {members[0]: name for name, members in STAGES.items() if len(members) == 1}
    return "+".join(single[stage] for stage in STAGES["all"] if stage in stages)


def complete_run_tags(context, domain: str) -> None:
    """Give a run the tags the bridge sets (domain, stage, process_date, er/trigger), whatever
    started it: the UI, a schedule, a backfill; and give an in-process run (bridge, demo) the
    code location's tag, which the job page filters by. Tags already set are kept, so a bridge
    run keeps its own. Added by the run's first step, as Dagster lets a run's tags grow
    (`DagsterInstance.add_run_tags`); the job's static `domain` tag is there from the start."""
    from er_assets.defs.definitions import location_tags
    from er_assets.history import STAGES

    tags = context.run.tags
    selection = context.run.asset_selection  # None: the whole job
    stages = {key.path[-1] for key in selection if key.path[0] == domain} if selection else set(STAGES)
    wanted = {"domain": domain, "stage": stage_tag(stages), "process_date": context.partition_key,
              "er/trigger": trigger(tags)[0].split(":")[0], **location_tags()}
    missing = {key: value for key, value in wanted.items() if key not in tags}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)


class StageRecord:
    """What a stage reports at its end: records handled, metadata, its check results."""

    def __init__(self):
        self.record_count: int | None = None
        self.metadata: dict = {}
        self.failed_checks: list[str] = []

    def finish(self, record_count: int, metadata: dict, check_results) -> None:
        self.record_count = record_count
        self.metadata = metadata
        # A failed WARN check is shown in Dagster but does not stop the pipeline, so it is no DQ failure.
        self.failed_checks = blocking_failures(check_results)


def _status_for(exc: BaseException) -> tuple[Status, int]:
    from er_assets import exit_codes

    if isinstance(exc, MatchingJobTimeout):
        return Status.TIMEOUT, exit_codes.TIMEOUT
    if isinstance(exc, GateClosed):
        return Status.DQ_FAILED, exit_codes.DQ_GATE_FAILED
    if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        return Status.CANCELLED, exit_codes.TERMINATED
    return Status.FAILED, exit_code_of(exc)


@contextmanager
def recording(context, history: HistoryResource, domain: str, stage: str) -> Iterator[StageRecord]:
    """Record the stage in the history; mask secrets in whatever it raises, before Dagster
    logs the exception to its event log, compute logs and the bridge's stderr."""
    try:
        with _recording(context, history, domain, stage) as record:
            yield record
    except BaseException as exc:
        if not scrub_exception(exc):
            # Its text cannot be masked in place: raise one of ours that masks itself and
            # keeps the exit code, so the bridge and the history still agree.
            raise masked_error(exc) from None
        raise


@contextmanager
def _recording(context, history: HistoryResource, domain: str, stage: str) -> Iterator[StageRecord]:
    from er_assets import exit_codes

    tags = context.run.tags
    complete_run_tags(context, domain)
    started_by, autosys_job = trigger(tags)
    record = StageRecord()
    attempt = context.retry_number + 1  # a retried step reopens its row instead of adding one
    with history.store() as store:
        store.record_start(
            context.run_id, stage, domain, context.partition_key,
            tags.get("process_date") or context.partition_key, started_by,
            job_name=context.job_name, autosys_job_name=autosys_job, attempt=attempt,
        )
        try:
            try:
                yield record
            except RuntimeError as exc:
                # DuckDB swallows the interrupt a signal handler raises mid-query and raises
                # this instead: it is the SIGTERM/SIGINT, not a failure of the stage.
                if str(exc) != "Query interrupted":
                    raise
                raise dg.DagsterExecutionInterruptedError("interrupted by a signal during a warehouse query") from exc
        except BaseException as exc:
            status, code = _status_for(exc)
            store.record_end(context.run_id, stage, status, exit_code=code,
                             error_message=f"{type(exc).__name__}: {exc}", attempt=attempt)
            raise
        if record.failed_checks:
            store.record_end(context.run_id, stage, Status.DQ_FAILED, record.record_count, exit_codes.DQ_GATE_FAILED,
                             f"data-quality checks failed: {', '.join(record.failed_checks)}", record.metadata,
                             attempt=attempt)
        else:
            store.record_end(context.run_id, stage, Status.SUCCEEDED, record.record_count, exit_codes.OK,
                             metadata=record.metadata, attempt=attempt)
