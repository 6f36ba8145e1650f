"""What one row of the job history says, independent of the database that holds it."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Any

from er_assets import exit_codes


class Status(str, enum.Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DQ_FAILED = "DQ_FAILED"  # a blocking data-quality check stopped the stage
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"

    @property
    def terminal(self) -> bool:
        return self is not Status.RUNNING

    @property
    def failure(self) -> bool:
        return self in FAILURES


FAILURES = frozenset({Status.FAILED, Status.DQ_FAILED, Status.TIMEOUT})


@dataclass(frozen=True)
class LatePartition:
    """A partition whose final stage had not succeeded when its SLA ran out (`due_at`):
    `state` says where it stood then (never started, a stage running, a stage that ended
    without success)."""

    domain: str
    partition_key: str
    due_at: dt.datetime
    state: str


# How a stage that ends with each of the bridge's exit codes is recorded; every other code
# (stage failed, bad usage, service unavailable) is FAILED.
STATUS_BY_EXIT_CODE = {
    exit_codes.OK: Status.SUCCEEDED,
    exit_codes.DQ_GATE_FAILED: Status.DQ_FAILED,
    exit_codes.TIMEOUT: Status.TIMEOUT,
    exit_codes.TERMINATED: Status.CANCELLED,
}
EXIT_CODE_BY_STATUS = {status: code for code, status in STATUS_BY_EXIT_CODE.items()}


@dataclass(frozen=True)
class JobRun:
    """One stage of one Dagster run: the unit the history counts."""

    history_id: int  # the row's id in er_job_history; the matching job's id is metadata["job_id"]
    run_id: str
    stage: str
    domain: str
    partition_key: str
    process_date: dt.date
    trigger: str
    job_name: str | None
    autosys_job_name: str | None
    start_time: dt.datetime
    end_time: dt.datetime | None
    status: Status
    record_count: int | None
    duration_seconds: float | None
    exit_code: int | None
    error_message: str | None
    error_key: str | None
    metadata: dict[str, Any]
    attempt: int  # 1, or the step retry (within the run) that produced the final outcome


_VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # run and job ids
    r"|\b[0-9a-f]{16,}\b"  # hashes, long hex ids
    r"|\d+(?:\.\d+)?",  # counts, durations, dates
    re.IGNORECASE,
)


def error_key(message: str | None, width: int = 160) -> str | None:
    """The error's first line with ids and numbers masked, so that the same failure on
    different partitions ("expected 100 records, got 42" / "... got 7") counts as one
    kind of error in the top-errors view."""
    if not message or not message.strip():
        return None
    first = message.strip().splitlines()[0]
    return _VOLATILE.sub("#", first)[:width]
