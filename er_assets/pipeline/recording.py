"""Recording every stage execution in the job history, whatever started the run.

The record is written by the stage itself (start, then exactly one end), so a run from the
UI, a schedule, a backfill or AutoSys through the bridge is counted the same way, including
runs stopped by a DQ gate or cancelled by SIGTERM. The store is idempotent on (run id,
stage): a retried step never makes a second row. In production each recorded end is also
published to CloudWatch (`er_assets.resources.metrics`), after the row is written, so the
history never waits for CloudWatch and CloudWatch never fails the stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from er_assets import interrupts
from er_assets.errors import EXIT_CODE_METADATA, exit_code_of
from er_assets.history import HistoryStore, Status
from er_assets.history.model import STATUS_BY_EXIT_CODE
from er_assets.pipeline.checks import blocking_failures
from er_assets.redact import redact_text, scrub_exception
from er_assets.resources import metrics
from er_assets.resources.history import HistoryResource


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
    """The exit code the bridge gives a stage that raised `exc`, and how the history records it."""
    from er_assets import exit_codes

    interrupted = isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError))
    code = exit_codes.TERMINATED if interrupted else exit_code_of(exc)
    return STATUS_BY_EXIT_CODE.get(code, Status.FAILED), code


@contextmanager
def recording(
    context, history: HistoryResource, domain: str, stage: str, region: str | None = None
) -> Iterator[StageRecord]:
    """Record the stage in the history; mask secrets in whatever it raises, before Dagster
    logs the exception to its event log, compute logs and the bridge's stderr. A run whose
    signal was lost before the stage began stops here (`interrupts`). `region` is where the
    production metrics go (the configuration's `settings.region`, unless ER_AWS_REGION)."""
    interrupts.check()
    try:
        with _recording(context, history, domain, stage, region) as record:
            yield record
    except Exception as exc:
        if not scrub_exception(exc):
            raise stage_failure(exc) from None  # its text cannot be masked in place
        raise stage_failure(exc) from exc
    except BaseException as exc:
        # An interrupt stays what it is (Dagster handles it, exit 143), masked in place: it may
        # carry a driver error holding a DSN in its context.
        scrub_exception(exc)
        raise


def stage_failure(exc: Exception) -> dg.Failure:
    """What a stage raises when it fails: a `dg.Failure` whose metadata carries the exit code
    (`exit_code_of`, the same the history records), so the bridge reads the code from the
    event log instead of matching class names. Raised from `exc` when its text could be
    masked in place; otherwise from nothing, so the unmasked text never reaches the log."""
    return dg.Failure(
        description=redact_text(f"{type(exc).__name__}: {exc}"),
        metadata={EXIT_CODE_METADATA: exit_code_of(exc)},
    )


def blocked_failure(asset: dg.AssetKey, failed_checks: list[str]) -> dg.Failure:
    """What a stage raises after reporting a result that failed blocking checks: the step
    fails with the DQ exit code, as the history row says."""
    from er_assets import exit_codes

    named = [f"{asset.to_user_string()}:{name}" for name in failed_checks]
    return dg.Failure(description=_dq_failed(named), metadata={EXIT_CODE_METADATA: exit_codes.DQ_GATE_FAILED})


def _dq_failed(failed_checks: list[str]) -> str:
    return f"data-quality checks failed: {', '.join(failed_checks)}"


@contextmanager
def _recording(context, history: HistoryResource, domain: str, stage: str, region: str | None) -> Iterator[StageRecord]:
    from er_assets import exit_codes

    def published(store: HistoryStore, ended: bool) -> None:
        # Only an end this call recorded: a duplicate end event is no second stage end.
        if ended:
            metrics.publish_stage_end(
                store, context.run_id, stage, history.sla_minutes.get(domain), region, context.log.warning
            )

    tags = context.run.tags
    started_by, autosys_job = trigger(tags)
    record = StageRecord()
    attempt = context.retry_number + 1  # a retried step reopens its row instead of adding one
    with history.store() as store:
        store.record_start(
            context.run_id,
            stage,
            domain,
            context.partition_key,
            tags.get("process_date") or context.partition_key,
            started_by,
            job_name=context.job_name,
            autosys_job_name=autosys_job,
            attempt=attempt,
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
            ended = store.record_end(
                context.run_id,
                stage,
                status,
                exit_code=code,
                error_message=f"{type(exc).__name__}: {exc}",
                attempt=attempt,
            )
            published(store, ended)
            raise
        if record.failed_checks:
            ended = store.record_end(
                context.run_id,
                stage,
                Status.DQ_FAILED,
                record.record_count,
                exit_codes.DQ_GATE_FAILED,
                _dq_failed(record.failed_checks),
                record.metadata,
                attempt=attempt,
            )
        else:
            ended = store.record_end(
                context.run_id,
                stage,
                Status.SUCCEEDED,
                record.record_count,
                exit_codes.OK,
                metadata=record.metadata,
                attempt=attempt,
            )
        published(store, ended)
