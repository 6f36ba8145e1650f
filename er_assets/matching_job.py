"""Driving one AWS Entity Resolution matching job: the production code path.

The job can run for hours, so its id is recorded durably before the first poll, a re-run
re-attaches to a job that is still QUEUED or RUNNING (the service has no cancel, and a
second job would be refused by the one-job-per-region quota anyway), and a SUCCEEDED job
for the same extract is reused rather than paid for twice. A kill between StartMatchingJob
and recording the id is covered by the intent recorded before the start (`start_intent`,
`adoptable_job`): only the service's own list can tell afterwards which job was started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from er_assets.errors import MatchingJobFailed, MatchingJobTimeout, ServiceUnavailable

ACTIVE = ("QUEUED", "RUNNING")
# Start/conflict answers worth waiting out: another job holds the region's only slot.
BUSY_CODES = ("ConflictException", "ExceedsLimitException", "ThrottlingException")
FIRST_POLL_SECONDS = 0.5


@dataclass
class JobOutcome:
    job_id: str
    status: str
    metrics: dict
    output_uri: str
    reused: bool = False
    attached: bool = False


def _explain(exc: Exception, what: str) -> Exception:
    """Turn botocore errors a user must fix into one clear line."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ServiceUnavailable(f"{what}: no AWS credentials found (set AWS_PROFILE or refresh the profile)")
    if isinstance(exc, EndpointConnectionError):
        return ServiceUnavailable(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in ("ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "InvalidSignatureException"):
            return ServiceUnavailable(f"{what}: AWS credentials expired or invalid ({code}); refresh them")
        if code in ("AccessDeniedException", "AccessDenied"):
            return ServiceUnavailable(f"{what}: access denied ({message}); grant the role this permission")
        if code in ("ResourceNotFoundException", "EntityNotFoundException"):
            return ServiceUnavailable(f"{what}: {message}")
    return exc


def point_glue_table(glue, database: str, table: str, location: str) -> None:
    """Point the workflow's Glue input table at one partition's extract prefix."""
    try:
        current = glue.get_table(DatabaseName=database, Name=table)["Table"]
        # UpdateTable takes a TableInput: only the fields the caller may set.
        keep = ("Name", "Description", "Owner", "Retention", "StorageDescriptor", "PartitionKeys",
                "TableType", "Parameters")
        table_input = {k: current[k] for k in keep if k in current}
        table_input["StorageDescriptor"] = {**current.get("StorageDescriptor", {}), "Location": location}
        glue.update_table(DatabaseName=database, TableInput=table_input)
    except Exception as exc:
        raise _explain(exc, f"Glue table {database}.{table}") from exc


def output_uri(job: dict, workflow_name: str) -> str:
    base = job["outputSourceConfig"][0]["outputS3Path"].rstrip("/")
    return f"{base}/{workflow_name}/{job['jobId']}/success/"


def run_matching_job(
    er,
    workflow_name: str,
    previous_job_id: str | None,
    before_start: Callable[[], None],
    record_job_id: Callable[[str], None],
    log: Callable[[str], None],
    timeout: float,
    check_interval: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobOutcome:
    """Start (or re-attach to, or reuse) the matching job and wait for it to end.

    `previous_job_id` is the job recorded for this same extract by an earlier attempt.
    `before_start` runs just before a new job is started (it points the input at this
    partition's extract); `record_job_id` must persist a new job id before it is polled.
    """
    deadline = clock() + timeout
    attached = reused = False
    job_id = None
    if previous_job_id:
        try:
            earlier = er.get_matching_job(workflowName=workflow_name, jobId=previous_job_id)
        except Exception as exc:
            raise _explain(exc, f"matching workflow {workflow_name}") from exc
        if earlier["status"] in ACTIVE:
            job_id, attached = previous_job_id, True
            log(f"re-attaching to matching job {job_id} ({earlier['status']}) started by an earlier attempt")
        elif earlier["status"] == "SUCCEEDED":
            job_id, reused = previous_job_id, True
            log(f"reusing matching job {job_id}, which already SUCCEEDED for this extract")
    if job_id is None:
        before_start()
        job_id = _start(er, workflow_name, log, deadline, sleep, clock, check_interval)
        # Recorded before anything else is said or done, so a crash after this point leaves
        # the id for the re-run to find.
        record_job_id(job_id)
        log(f"started matching job {job_id} of workflow {workflow_name}")
    return _wait(er, workflow_name, job_id, log, deadline, timeout, check_interval, sleep, clock, attached, reused)


def _pause(delay: float, deadline: float, clock) -> float | None:
    """How long to sleep before the next try: the back-off delay, cut short at the deadline
    so the last try happens at EXECUTION_TIMEOUT, not up to CHECK_INTERVAL before it; None
    once the deadline has passed."""
    left = deadline - clock()
    return None if left <= 0 else min(delay, left)


def _start(er, workflow_name, log, deadline, sleep, clock, check_interval) -> str:
    from botocore.exceptions import ClientError

    delay = FIRST_POLL_SECONDS
    while True:
        try:
            return er.start_matching_job(workflowName=workflow_name)["jobId"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in BUSY_CODES:
                raise _explain(exc, f"matching workflow {workflow_name}") from exc
            pause = _pause(delay, deadline, clock)
            if pause is None:
                raise MatchingJobTimeout(
                    f"could not start a matching job of {workflow_name} before EXECUTION_TIMEOUT: "
                    f"{exc.response['Error'].get('Message', code)}"
                ) from exc
            log(f"the region's matching slot is busy ({code}); retrying in {pause:.0f}s")
            sleep(pause)
            delay = min(delay * 2, check_interval)
        except Exception as exc:
            raise _explain(exc, f"matching workflow {workflow_name}") from exc


def _wait(er, workflow_name, job_id, log, deadline, timeout, check_interval, sleep, clock, attached, reused) -> JobOutcome:
    delay = FIRST_POLL_SECONDS
    last_progress = None
    while True:
        try:
            job = er.get_matching_job(workflowName=workflow_name, jobId=job_id)
        except Exception as exc:
            raise _explain(exc, f"matching job {job_id}") from exc
        status, metrics = job["status"], job.get("metrics", {})
        progress = (status, metrics.get("totalRecordsProcessed"), metrics.get("inputRecords"))
        if progress != last_progress:
            log(f"matching job {job_id}: {status}, {metrics.get('totalRecordsProcessed', 0)} of "
                f"{metrics.get('inputRecords', 0)} records processed")
            last_progress = progress
        if status == "SUCCEEDED":
            return JobOutcome(job_id, status, metrics, output_uri(job, workflow_name), reused, attached)
        if status == "FAILED":
            message = job.get("errorDetails", {}).get("errorMessage", "no error message")
            raise MatchingJobFailed(f"matching job {job_id} of {workflow_name} FAILED: {message}")
        pause = _pause(delay, deadline, clock)
        if pause is None:
            raise MatchingJobTimeout(
                f"matching job {job_id} of {workflow_name} still {status} after EXECUTION_TIMEOUT={timeout:.0f}s; "
                "it keeps running at AWS and a re-run re-attaches to it"
            )
        sleep(pause)
        delay = min(delay * 2, check_interval)


# --- exactly one job per extract: the intent recorded before StartMatchingJob -----------------

# How far the service's clock may lag ours: a job started just after the intent must not look
# older than it. Jobs already in that window when the intent is taken are listed in it.
CLOCK_SKEW_SECONDS = 300


def _started_since(er, workflow_name: str, since: float) -> list[dict]:
    """The workflow's jobs started at or after `since` (epoch seconds), oldest first. AWS
    documents no order for ListMatchingJobs, so every page is read and sorted here."""
    try:
        pages = er.get_paginator("list_matching_jobs").paginate(workflowName=workflow_name)
        jobs = [job for page in pages for job in page.get("jobs", []) if job["startTime"].timestamp() >= since]
    except Exception as exc:
        raise _explain(exc, f"matching workflow {workflow_name}") from exc
    return sorted(jobs, key=lambda job: job["startTime"])


def start_intent(er, workflow_name: str, now: Callable[[], float] = time.time) -> dict:
    """What to record durably just before StartMatchingJob: when, and which jobs of the
    workflow already existed around then. A crash between the start and recording the job id
    leaves only this behind; `adoptable_job` finds the job from it."""
    since = now() - CLOCK_SKEW_SECONDS
    return {"intent_since": since, "intent_known_jobs": [j["jobId"] for j in _started_since(er, workflow_name, since)]}


def adoptable_job(er, workflow_name: str, intent: dict, claimed: set[str]) -> str | None:
    """The job an attempt that recorded `intent` started but died before recording: the oldest
    job of the workflow started since the intent that was not known at intent time and that
    no other partition has recorded as its own (`claimed`). None when the start never reached
    the service, so a new job may be started."""
    known = set(intent.get("intent_known_jobs", ())) | claimed
    for job in _started_since(er, workflow_name, float(intent["intent_since"])):
        if job["jobId"] not in known:
            return job["jobId"]
    return None
