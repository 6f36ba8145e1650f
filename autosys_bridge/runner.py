"""Materialise one stage of one domain for one partition, and turn the outcome into an exit code.

The run goes into the persistent Dagster instance (DAGSTER_HOME), so it shows in the Dagster
UI next to schedules and backfills, tagged with what AutoSys knows about it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from er_assets import exit_codes, processes

# Dagster frees a dead run's slots only by deleting the run or from its daemon: the private
# call is in dagster_private, which imports dagster only when called.
from er_assets.dagster_private import free_concurrency_slots_for_run


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived (AutoSys KILLJOB or term_run_time)."""


def run_tags(domain: str, stage: str, partition: str, process_date, trigger: str = "cli") -> dict[str, str]:
    tags = {
        "domain": domain,
        "stage": stage,
        "process_date": str(process_date or partition),
        "er/trigger": "autosys" if os.environ.get("AUTO_JOB_NAME") else trigger,
        "er/host": socket.gethostname(),
        "er/pid": str(os.getpid()),
    }
    if os.environ.get("AUTO_JOB_NAME"):
        tags["autosys/job_name"] = os.environ["AUTO_JOB_NAME"]
    if os.environ.get("AUTORUN"):
        tags["autosys/run_number"] = os.environ["AUTORUN"]
    return tags


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} autosys-bridge: {message}", file=sys.stderr, flush=True)


def exit_code_for(result) -> tuple[int, str]:
    """The exit code a finished run deserves, and a one-line reason: the code its failed stage
    carries (`er_assets.pipeline.recording.stage_failure`), else that of its failed checks."""
    from er_assets.errors import EXIT_CODE_METADATA

    if result.success:
        return exit_codes.OK, "success"
    if _interrupted(result):
        return exit_codes.TERMINATED, "interrupted by SIGTERM"
    failures = result.get_step_failure_events()
    for event in failures:
        failure = event.step_failure_data.user_failure_data
        if failure is not None and EXIT_CODE_METADATA in failure.metadata:
            reason = (failure.description or "stage failed").strip().splitlines()[0]
            return int(failure.metadata[EXIT_CODE_METADATA].value), reason
    failed_checks = [
        e for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"
    ]  # a failed WARN check blocks nothing
    if failed_checks:
        names = ", ".join(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in failed_checks)
        return exit_codes.DQ_GATE_FAILED, f"data-quality checks failed: {names}"
    if not failures:
        return exit_codes.STAGE_FAILED, "run failed"
    # Failed outside a stage's body (Dagster itself, a resource): no code of ours to read.
    error = failures[0].step_failure_data.error
    while error.cause is not None:  # Dagster wraps the user's exception; report the original
        error = error.cause
    return exit_codes.STAGE_FAILED, error.message.strip().splitlines()[0]


def _reclaim_dead_runs(instance) -> None:
    """Close the runs of bridge processes on this host that died without ending their run
    (kill -9, a crashed host agent). Such a run still holds its slot in the matching pool,
    and every later matching step would wait for it forever."""
    import dagster as dg

    from er_assets.history import HistoryStore, Status

    open_runs = instance.get_runs(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING], tags={"er/host": socket.gethostname()}
        )
    )
    for run in open_runs:
        # A re-execution from the UI inherits its parent's tags: it is not a bridge run.
        if run.tags.get("dagster/parent_run_id"):
            continue
        pid = int(run.tags.get("er/pid", "0"))
        if pid and _bridge_alive(pid):
            continue
        message = f"the bridge process {pid} that ran it died; closed by a later bridge run"
        _log(f"run {run.run_id}: {message}")
        instance.report_run_failed(run, message=message)
        free_concurrency_slots_for_run(instance, run.run_id)
        with HistoryStore.from_env() as store:
            for row in store.rows(run_id=run.run_id, status=Status.RUNNING):
                store.record_end(run.run_id, row.stage, Status.FAILED, error_message=message)


def _bridge_alive(pid: int) -> bool:
    """Is `pid` still a running bridge (the `autosys-bridge` script, or `-m autosys_bridge...`:
    the CLI, the demo)? A pid reused by another program does not count, nor one reused by
    another part of the project (an emulator worker, a Dagster code server)."""
    return processes.running(
        pid, lambda words: any(b"autosys-bridge" in word or word.startswith(b"autosys_bridge") for word in words)
    )


def _interrupted_steps(result) -> list[str]:
    # During execution Dagster maps SIGTERM to its own interrupt, which fails the running step
    # with DagsterExecutionInterruptedError.
    steps = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            if error.cls_name == "DagsterExecutionInterruptedError":
                steps.append(event.step_key)
                break
            error = error.cause
    return steps


def _interrupted(result) -> bool:
    return bool(_interrupted_steps(result))


def _record_cancelled(result, domain: str, partition: str, tags: dict) -> None:
    """A signal that lands before a stage has written its history row (right after its step
    started), or while it writes it, still leaves one row, CANCELLED. Both writes are
    idempotent: a row the stage already ended keeps its outcome."""
    from er_assets.history import HistoryStore, Status
    from er_assets.pipeline.recording import trigger

    started_by, autosys_job = trigger(tags)
    with HistoryStore.from_env() as store:
        for step in _interrupted_steps(result):
            stage = step.rsplit("__", 1)[-1]
            store.record_start(
                result.run_id,
                stage,
                domain,
                partition,
                tags["process_date"],
                started_by,
                job_name=result.job_def.name,
                autosys_job_name=autosys_job,
            )
            store.record_end(
                result.run_id,
                stage,
                Status.CANCELLED,
                exit_code=exit_codes.TERMINATED,
                error_message="Terminated by a signal before the stage recorded its outcome",
            )


def run_stage(
    config, domain, stage: str, assets: list[str], partition: str, run_config: dict, process_date, trigger: str = "cli"
) -> int:
    def on_signal(signum, frame):
        raise Terminated()

    # Background processes may inherit ignored signals, and AutoSys's KILLJOB sends SIGINT or
    # SIGTERM depending on the agent's settings: handle both, for the whole run.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(config, domain, stage, assets, partition, run_config, process_date, trigger)
    except Terminated:
        _log("terminated before the run started; nothing ran")
        return exit_codes.TERMINATED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(config, domain, stage, assets, partition, run_config, process_date, trigger) -> int:
    from er_assets.defs.instance import ensure_dagster_home, initialise_instance
    from er_assets.environment import deployment

    try:
        deployment()
    except ValueError as exc:
        _log(f"error: {exc}")
        return exit_codes.USAGE
    initialise_instance(ensure_dagster_home())
    import dagster as dg

    from er_assets import interrupts
    from er_assets.defs.definitions import domain_job
    from er_assets.redact import redact_text

    # The domain's own job, not the implicit asset job: the run shows on the job's page.
    job = domain_job(config, domain.name)
    keys = [dg.AssetKey.from_user_string(a) for a in assets]
    tags = run_tags(domain.name, stage, partition, process_date, trigger)
    _log(f"materialising {', '.join(assets)} for partition {partition} into {os.environ['DAGSTER_HOME']}")
    with dg.DagsterInstance.get() as instance:
        _reclaim_dead_runs(instance)
        interrupts.watch()  # a signal whose exception Python drops is still seen by the stages
        try:
            result = job.execute_in_process(
                run_config=run_config or None,
                instance=instance,
                partition_key=partition,
                asset_selection=keys,
                tags=tags,
                raise_on_error=False,
            )
        finally:
            interrupts.unwatch()
        # The run has ended and says how: a signal now would only cut its bookkeeping short.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        code, reason = exit_code_for(result)
        if code == exit_codes.TERMINATED:
            _record_cancelled(result, domain.name, partition, tags)
            # The interrupted step rolled back (loads are one transaction); record the run
            # as cancelled, as a terminate from the UI would, not as a data failure.
            run = instance.get_run_by_id(result.run_id)
            assert run is not None  # execute_in_process stored the run in this instance
            instance.report_run_canceled(
                run,
                message="Terminated by SIGTERM (AutoSys KILLJOB or term_run_time); "
                "a matching job already started keeps running at AWS and a re-run re-attaches to it",
            )
    # stderr lands in AutoSys's std_err_file: keep credentials out of it, as out of the history.
    _log(f"run {result.run_id}: {exit_codes.DESCRIPTIONS[code]} (exit {code}): {redact_text(reason)}")
    return code
