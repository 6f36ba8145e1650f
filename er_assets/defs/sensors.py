"""Mail for runs launched in Dagster (UI, schedules, backfills), from run-status sensors.

AutoSys notifies its own runs through the JIL notification attributes, so runs the bridge
started for AutoSys are skipped here: no run is notified twice. What failed, and where, is
read from the job history the stages wrote; the history also remembers what was already
sent, so a sensor that re-evaluates a run sends nothing new.
"""

import datetime as dt

import dagster as dg

from er_assets import stages
from er_assets.config import Configuration
from er_assets.history import Status
from er_assets.pipeline import checks
from er_assets.pipeline.lateness import find_late
from er_assets.resources.history import HistoryResource
from er_assets.resources.notifications import RunOutcome, notify_late, notify_run

# How often the daemon looks for late partitions: SLAs are minutes to hours.
LATE_CHECK_SECONDS = 300


def _stages(history: HistoryResource, run_id: str):
    with history.store() as store:
        return store.rows(run_id=run_id)


def notify(config: Configuration, history: HistoryResource, run: dg.DagsterRun, failed: bool) -> list[tuple[str, str]]:
    """Send what this finished run deserves (`failed`: it failed or was cancelled); the
    (stage, status) pairs mailed."""
    if run.tags.get("autosys/job_name"):
        return []
    sent: list[tuple[str, str]] = []
    for row in _stages(history, run.run_id):
        if failed:  # a failed or cancelled run: its failed or cancelled stages
            wanted = row.status.failure or row.status is Status.CANCELLED
        else:
            wanted = row.status is Status.SUCCEEDED and row.stage == stages.FINAL
        if not wanted:
            continue
        with history.store() as store:
            outcome = RunOutcome(row.domain, row.stage, row.partition_key, run.run_id, row.status, row.error_message)
            if notify_run(config, outcome, store=store):
                sent.append((row.stage, row.status.value))
    return sent


def build_sensors(config: Configuration) -> list:
    @dg.run_failure_sensor(
        name="er_failure_mail", monitor_all_code_locations=True, default_status=dg.DefaultSensorStatus.RUNNING
    )
    def failure_mail(context: dg.RunFailureSensorContext, history: HistoryResource):
        notify(config, history, context.dagster_run, failed=True)

    def status_mail(name: str, status: dg.DagsterRunStatus, failed: bool):
        @dg.run_status_sensor(
            name=name, run_status=status, monitor_all_code_locations=True, default_status=dg.DefaultSensorStatus.RUNNING
        )
        def mail(context: dg.RunStatusSensorContext, history: HistoryResource):
            notify(config, history, context.dagster_run, failed=failed)

        return mail

    success_mail = status_mail("er_success_mail", dg.DagsterRunStatus.SUCCESS, failed=False)
    # A run terminated from the UI ends CANCELED, which the failure sensor does not see.
    cancel_mail = status_mail("er_cancel_mail", dg.DagsterRunStatus.CANCELED, failed=True)

    @dg.sensor(
        name="er_late_partitions",
        minimum_interval_seconds=LATE_CHECK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Mails each partition whose load has not succeeded sla_minutes after its schedule fired, once",
    )
    def late_partitions(context: dg.SensorEvaluationContext, history: HistoryResource):
        return look_for_late(config, history, context)

    return [failure_mail, success_mail, cancel_mail, late_partitions]


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def look_for_late(config: Configuration, history: HistoryResource, context) -> dg.SkipReason:
    """One look: mail the partitions that fell due since the last look (the cursor), so turning
    the sensor on, or adding a domain whose start_date is in the past, never mails the gaps of
    the past, and each look reads only the partitions due since the last. A look that fails (a
    mail not sent) leaves the cursor, so the next look retries; a daemon that was down looks
    back to its last good look."""
    looked_at = now()
    since = dt.datetime.fromisoformat(context.cursor) if context.cursor else looked_at
    with history.store() as store:
        late = find_late(config, store, looked_at, since)
        mailed = []
        for partition in late:
            if notify_late(config, partition, store=store):
                # The UI shows it too: the loaded asset's `delivered` check, overdue until delivered.
                context.instance.report_runless_asset_event(checks.overdue(config.domain(partition.domain), partition))
                mailed.append(f"{partition.domain} {partition.partition_key} ({partition.state})")
    context.update_cursor(looked_at.isoformat())
    return dg.SkipReason(f"late, mailed now: {', '.join(mailed)}" if mailed else "no partition newly late")
