"""Driving one AWS Entity Resolution matching job: the production code path.

The job can run for hours, so its id is recorded durably before the first poll, a re-run
re-attaches to a job that is still QUEUED or RUNNING (the service has no cancel, and a
second job would be refused by the one-job-per-region quota anyway), and a SUCCEEDED job
for the same extract is reused rather than paid for twice. A kill between StartMatchingJob
and recording the id is covered by the intent recorded before the start (`start_intent`,
`adoptable_job`): only the service's own list can tell afterwards which job was started.

Errors, after botocore's own retries (its "standard" mode retries throttling and 5xx
answers), are handled as the API reference documents them (StartMatchingJob and
GetMatchingJob: ThrottlingException, InternalServerException, ResourceNotFoundException,
AccessDeniedException, ExceedsLimitException, ConflictException, ValidationException):

- in every read (GetMatchingJob while polling or re-attaching, ListMatchingJobs for the
  intent and for adopting a job), transient errors (throttling, 5xx, timeouts, lost
  connections) are retried with the polling back-off until EXECUTION_TIMEOUT: a running job
  is never abandoned, and no start is given up, because one read failed;
- a busy region (ConflictException, throttling, or ExceedsLimitException for the
  "Concurrent matching jobs" quota) is waited out before starting;
- ExceedsLimitException for any other quota fails at once, naming the quota (QuotaExceeded);
- expired or missing credentials (incl. SSO sessions and assume-role failures), access
  denied and unreachable endpoints exit 5 (ServiceUnavailable) with what to fix;
- ValidationException fails with the service's message: exit 2 (ConfigurationRejected)
  when starting, so nothing ran, exit 1 once a job exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from er_assets import interrupts
from er_assets.entity_resolution_service import ACTIVE_JOB_STATUSES, CONCURRENT_JOBS_QUOTA
from er_assets.errors import (
    ConfigurationRejected,
    MatchingJobFailed,
    MatchingJobTimeout,
    PipelineError,
    QuotaExceeded,
    ServiceUnavailable,
)

# Start answers worth waiting out: another job holds the region's only slot, or the service
# asks callers to slow down. ExceedsLimitException counts only for CONCURRENT_JOBS_QUOTA.
BUSY_CODES = ("ConflictException", "ThrottlingException")
# Answers that say nothing about the job, only that the service could not answer now.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailable",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)
ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
FIRST_POLL_SECONDS = 0.5


@dataclass
class JobOutcome:
    job_id: str
    status: str
    metrics: dict
    output_path: str  # the job's outputS3Path; its files are found by listing (match_output)
    reused: bool = False
    attached: bool = False


class Patience:
    """One stage's EXECUTION_TIMEOUT deadline and back-off, shared by every call of the stage
    that may be waited out (reads that failed transiently, a busy region)."""

    def __init__(
        self,
        timeout: float,
        check_interval: float,
        log: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.timeout, self.check_interval, self.log, self._sleep, self.clock = (
            timeout,
            check_interval,
            log,
            sleep,
            clock,
        )
        self.deadline = clock() + timeout

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run was signalled: every wait of the stage is where a lost
        interruption is noticed (`er_assets.pipeline.interrupts`)."""
        interrupts.check()
        self._sleep(seconds)
        interrupts.check()

    def pauses(self):
        """How long to sleep before each next try: FIRST_POLL_SECONDS doubling up to
        CHECK_INTERVAL, the last cut short at the deadline so the last try happens at
        EXECUTION_TIMEOUT, not up to CHECK_INTERVAL before it. Ends once the deadline has passed."""
        delay = FIRST_POLL_SECONDS
        while (left := self.deadline - self.clock()) > 0:
            yield min(delay, left)
            delay = min(delay * 2, self.check_interval)


def _response(exc: Exception) -> dict:
    """The parsed error response of a ClientError; {} for anything else."""
    return getattr(exc, "response", None) or {}


def _error(exc: Exception) -> tuple[str, str]:
    """(code, message) of a ClientError; ("", "") for anything else."""
    error = _response(exc)
    return error.get("Error", {}).get("Code", ""), error.get("Error", {}).get("Message", "")


def is_transient(exc: Exception) -> bool:
    """Did the call fail for a reason that says nothing about the job (worth asking again)?"""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, (HTTPClientError, BotoConnectionError)):  # read/connect timeouts, dropped connections
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _error(exc)[0] in TRANSIENT_CODES or status >= 500
    return False


def _busy(exc: Exception) -> bool:
    """Is the region's one job slot taken (or the service throttling starts)?"""
    code, message = _error(exc)
    if code == "ExceedsLimitException":
        quota = _response(exc).get("quotaName")
        return quota == CONCURRENT_JOBS_QUOTA if quota else "concurrent" in message.lower()
    return code in BUSY_CODES


def _explain(exc: Exception, what: str, started: bool = False) -> Exception:
    """Turn an error the caller cannot wait out into one line that says what to fix.

    `started`: a job exists already, so a ValidationException is a stage failure (exit 1)
    rather than a configuration the service refused before anything ran (exit 2).
    """
    from botocore import exceptions as boto

    profile = f" --profile {os.environ['AWS_PROFILE']}" if os.environ.get("AWS_PROFILE") else ""
    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ServiceUnavailable(f"{what}: no AWS credentials found (set AWS_PROFILE or refresh the profile)")
    if isinstance(exc, (boto.UnauthorizedSSOTokenError, boto.SSOTokenLoadError)):
        return ServiceUnavailable(
            f"{what}: the AWS SSO session has expired or is invalid; run `aws sso login{profile}`"
        )
    if isinstance(exc, (boto.CredentialRetrievalError, boto.TokenRetrievalError)):
        return ServiceUnavailable(
            f"{what}: could not get AWS credentials ({exc}); check the profile's role, "
            "credential_process and source credentials"
        )
    if isinstance(exc, (boto.HTTPClientError, boto.ConnectionError)):
        return ServiceUnavailable(f"{what}: cannot reach AWS ({exc}); check the network path and proxy to the endpoint")
    code, message = _error(exc)
    if not code:
        return exc
    if code in CREDENTIAL_CODES:
        # "<code>: <message>" would read as "name: value" to secret redaction (the code
        # contains "Token"), which would mask the message's first word.
        return ServiceUnavailable(
            f"{what}: AWS credentials expired or invalid: {message} ({code}); refresh them "
            f"(`aws sso login{profile}` or new keys)"
        )
    if code in ACCESS_CODES:
        return ServiceUnavailable(f"{what}: access denied ({message}); grant the role this permission")
    if code in ("ResourceNotFoundException", "EntityNotFoundException"):
        return ServiceUnavailable(f"{what}: {message}")
    if code == "ExceedsLimitException":
        quota = _response(exc).get("quotaName", "unnamed quota")
        value = _response(exc).get("quotaValue")
        limit = f" (limit {value})" if value is not None else ""
        return QuotaExceeded(
            f"{what}: AWS Entity Resolution quota '{quota}'{limit} exceeded: {message}; "
            "request an increase in Service Quotas or reduce the job"
        )
    if code == "ValidationException":
        if started:
            return PipelineError(f"{what}: the service rejected the request: {message}")
        return ConfigurationRejected(
            f"{what}: the service rejected the request: {message}; fix the configuration "
            "or the deployed workflow (autosys-bridge doctor compares them)"
        )
    if is_transient(exc):
        return ServiceUnavailable(f"{what}: the service is unavailable ({code}: {message}) after botocore's retries")
    return exc


def point_glue_table(glue, database: str, table: str, location: str) -> None:
    """Point the workflow's Glue input table at one partition's extract prefix."""
    try:
        current = glue.get_table(DatabaseName=database, Name=table)["Table"]
        # UpdateTable takes a TableInput: only the fields the caller may set.
        keep = (
            "Name",
            "Description",
            "Owner",
            "Retention",
            "StorageDescriptor",
            "PartitionKeys",
            "TableType",
            "Parameters",
        )
        table_input = {k: current[k] for k in keep if k in current}
        table_input["StorageDescriptor"] = {**current.get("StorageDescriptor", {}), "Location": location}
        # SkipArchive: "By default, UpdateTable always creates an archived version of the table
        # before updating it" (botocore's Glue model): one version per matching job, until the
        # account's table-version quota stops the updates.
        glue.update_table(DatabaseName=database, TableInput=table_input, SkipArchive=True)
    except Exception as exc:
        raise _explain(exc, f"Glue table {database}.{table}") from exc


def run_matching_job(
    er,
    workflow_name: str,
    previous_job_id: str | None,
    before_start: Callable[[], None],
    record_intent: Callable[[dict], None],
    record_job_id: Callable[[str], None],
    patience: Patience,
    started_elsewhere: Callable[[], str | None] = lambda: None,
) -> JobOutcome:
    """Start (or re-attach to, or reuse) the matching job and wait for it to end.

    `previous_job_id` is the job recorded for this same extract by an earlier attempt.
    `before_start` runs just before each start (it points the input at this partition's
    extract); `record_intent` must persist the `start_intent` durably before the start,
    `record_job_id` a new job id before it is polled. `started_elsewhere` names a job another
    attempt started for this same extract meanwhile: asked while the region is busy, so two
    attempts that both got past the concurrency pool still pay for one job.
    """
    joined = _join(er, workflow_name, previous_job_id, patience, "an earlier attempt")
    if joined is None:
        joined = _start(er, workflow_name, before_start, record_intent, record_job_id, started_elsewhere, patience)
    return _wait(er, workflow_name, patience, *joined)


def _join(er, workflow_name: str, job_id: str | None, patience: Patience, by: str) -> tuple | None:
    """(job id, attached, reused) for a job `by` started for this extract when it is still
    active or SUCCEEDED; None when there is none or it FAILED (a new job is due)."""
    if not job_id:
        return None
    earlier = _read(
        lambda: er.get_matching_job(workflowName=workflow_name, jobId=job_id),
        f"matching job {job_id} of {workflow_name}",
        "status call",
        patience,
    )
    if earlier["status"] in ACTIVE_JOB_STATUSES:
        patience.log(f"re-attaching to matching job {job_id} ({earlier['status']}) started by {by}")
        return job_id, True, False
    if earlier["status"] == "SUCCEEDED":
        patience.log(f"reusing matching job {job_id}, which already SUCCEEDED for this extract")
        return job_id, False, True
    return None


def _read(
    call: Callable[[], dict],
    what: str,
    name: str,
    patience: Patience,
    started: bool = False,
    meanwhile: str = "",
    hint: str = "",
) -> dict:
    """`call()`, a read of the service, with transient errors retried on the back-off until
    EXECUTION_TIMEOUT. `name` names the call in the messages; `meanwhile` says (in the log)
    what goes on while it is retried, `hint` (in the error) what to do after the deadline."""
    pauses = patience.pauses()
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise _explain(exc, what, started) from exc
            pause = next(pauses, None)
            reason = f"{_error(exc)[0] or type(exc).__name__}: {_error(exc)[1] or exc}"
            if pause is None:
                raise ServiceUnavailable(
                    f"{what}: {name}s still fail at EXECUTION_TIMEOUT={patience.timeout:.0f}s ({reason}){hint}"
                ) from exc
            patience.log(f"{what}: {name} failed ({reason}); {meanwhile}asking again in {pause:.0f}s")
            patience.sleep(pause)


def _start(
    er,
    workflow_name: str,
    before_start: Callable[[], None],
    record_intent: Callable[[dict], None],
    record_job_id: Callable[[str], None],
    started_elsewhere: Callable[[], str | None],
    patience: Patience,
) -> tuple:
    """Start a job, waiting out a busy region. Each try re-points the input (another partition
    of the domain may have re-pointed it while this one waited); the intent is recorded once,
    before the first try, so a start whose answer was lost (the job exists, a retry was
    refused) stays adoptable by the re-run. After each refusal, a job another attempt started
    for this extract is joined instead."""
    from botocore.exceptions import ClientError

    pauses = patience.pauses()
    record_intent(start_intent(er, workflow_name, patience))
    while True:
        before_start()
        try:
            job_id = er.start_matching_job(workflowName=workflow_name)["jobId"]
        except ClientError as exc:
            code = _error(exc)[0]
            if not _busy(exc):
                raise _explain(exc, f"matching workflow {workflow_name}") from exc
            pause = next(pauses, None)
            if pause is None:
                raise MatchingJobTimeout(
                    f"could not start a matching job of {workflow_name} before EXECUTION_TIMEOUT: "
                    f"{exc.response['Error'].get('Message', code)}"
                ) from exc
            patience.log(f"the region's matching slot is busy ({code}); retrying in {pause:.0f}s")
            patience.sleep(pause)
            joined = _join(er, workflow_name, started_elsewhere(), patience, "another attempt on this extract")
            if joined is not None:
                return joined
            continue
        except Exception as exc:
            raise _explain(exc, f"matching workflow {workflow_name}") from exc
        # Recorded before anything else is said or done, so a crash after this point leaves
        # the id for the re-run to find.
        record_job_id(job_id)
        patience.log(f"started matching job {job_id} of workflow {workflow_name}")
        return job_id, False, False


def _wait(er, workflow_name: str, patience: Patience, job_id: str, attached: bool, reused: bool) -> JobOutcome:
    pauses = patience.pauses()
    last_progress = None
    while True:
        job = _read(
            lambda: er.get_matching_job(workflowName=workflow_name, jobId=job_id),
            f"matching job {job_id} of {workflow_name}",
            "status call",
            patience,
            started=True,
            meanwhile="the job keeps running, ",
            hint="; the job may still be running at AWS and a re-run re-attaches to it",
        )
        status, metrics = job["status"], job.get("metrics", {})
        progress = (status, metrics.get("totalRecordsProcessed"), metrics.get("inputRecords"))
        if progress != last_progress:
            patience.log(
                f"matching job {job_id}: {status}, {metrics.get('totalRecordsProcessed', 0)} of "
                f"{metrics.get('inputRecords', 0)} records processed"
            )
            last_progress = progress
        if status == "SUCCEEDED":
            return JobOutcome(job_id, status, metrics, job["outputSourceConfig"][0]["outputS3Path"], reused, attached)
        if status == "FAILED":
            message = job.get("errorDetails", {}).get("errorMessage", "no error message")
            raise MatchingJobFailed(f"matching job {job_id} of {workflow_name} FAILED: {message}")
        pause = next(pauses, None)
        if pause is None:
            raise MatchingJobTimeout(
                f"matching job {job_id} of {workflow_name} still {status} after "
                f"EXECUTION_TIMEOUT={patience.timeout:.0f}s; it keeps running at AWS and a re-run re-attaches to it"
            )
        patience.sleep(pause)


# --- exactly one job per extract: the intent recorded before StartMatchingJob -----------------

# How far the service's clock may lag ours: a job started just after the intent must not look
# older than it. Jobs already in that window when the intent is taken are listed in it.
CLOCK_SKEW_SECONDS = 300


def _started_since(er, workflow_name: str, since: float, patience: Patience) -> list[dict]:
    """The workflow's jobs started at or after `since` (epoch seconds), oldest first. AWS
    documents no order for ListMatchingJobs, so every page is read and sorted here (all pages
    again when one fails transiently: a page token may not outlive the wait)."""

    def every_page() -> dict:
        pages = er.get_paginator("list_matching_jobs").paginate(workflowName=workflow_name)
        return {"jobs": [job for page in pages for job in page.get("jobs", [])]}

    listed = _read(
        every_page,
        f"matching workflow {workflow_name}",
        "ListMatchingJobs call",
        patience,
        meanwhile="no job is started meanwhile, ",
    )
    jobs = [job for job in listed["jobs"] if job["startTime"].timestamp() >= since]
    return sorted(jobs, key=lambda job: job["startTime"])


def start_intent(er, workflow_name: str, patience: Patience, now: Callable[[], float] = time.time) -> dict:
    """What to record durably just before StartMatchingJob: when, and which jobs of the
    workflow already existed around then. A crash between the start and recording the job id
    leaves only this behind; `adoptable_job` finds the job from it."""
    since = now() - CLOCK_SKEW_SECONDS
    known = _started_since(er, workflow_name, since, patience)
    return {"intent_since": since, "intent_known_jobs": [j["jobId"] for j in known]}


def adoptable_job(er, workflow_name: str, intent: dict, claimed: set[str], patience: Patience) -> str | None:
    """The job an attempt that recorded `intent` started but died before recording: the oldest
    job of the workflow started since the intent that was not known at intent time and that
    no other partition has recorded as its own (`claimed`). None when the start never reached
    the service, so a new job may be started."""
    known = set(intent.get("intent_known_jobs", ())) | claimed
    for job in _started_since(er, workflow_name, float(intent["intent_since"]), patience):
        if job["jobId"] not in known:
            return job["jobId"]
    return None
