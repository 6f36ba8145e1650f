"""Each stage end's figures as CloudWatch metrics, in production only.

One `PutMetricData` call per stage end, in the namespace `ER_METRICS_NAMESPACE` (default
`EntityResolution/Pipelines`), every datum with the dimensions Domain and Stage:

    DurationSeconds   the history row's duration (from the first attempt's start)
    Records           the records the stage counted, when it counted any
    MatchRate         matched only: percent of records sharing their MatchID (its metadata)
    StageSucceeded, StageFailed, StageCancelled
                      1 for the stage's outcome, 0 for the other two; StageFailed counts the
                      history's failures (FAILED, DQ_FAILED, TIMEOUT) and is also published with
                      Domain alone, the one figure an alarm sums over the stages
    SlaMet, DeliverySeconds
                      loaded only, when this stage end delivers the partition for the first time:
                      1 if the seconds from the partition's first stage start to this success are
                      within `schedule.sla_minutes` (er_v_sla_compliance's MET), else 0 (LATE)

The alarms on them are written by `autosys-bridge aws export` (`er_assets/ops/cloudformation.py`).

Locally (ER_DEPLOYMENT=local) nothing is sent and no client is made: the job history and the
Dagster metadata hold the same figures. In production the metrics are a side channel that must
never fail or slow a stage: the client waits `CONNECT_TIMEOUT`/`READ_TIMEOUT` seconds and makes
at most `MAX_ATTEMPTS` attempts, and any error (unreachable endpoint, access denied, no
credentials, a history read) is counted in `counters` and logged once per process, one line
without traceback; the stage goes on as if nothing happened.

CloudWatch facts relied on (PutMetricData API reference): at most 1000 metrics and 1 MB per
request (a stage end sends at most 9 datums), values must be finite (NaN and infinities are
rejected, so they are left out), time stamps may lie up to two weeks in the past (each datum
carries the stage's recorded end), and a namespace is 1-255 ASCII characters, must not start
with ':' and should not start with 'AWS/'.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from er_assets import stages
from er_assets.environment import deployment

if TYPE_CHECKING:
    from er_assets.history import HistoryStore, JobRun

NAMESPACE_ENV = "ER_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "EntityResolution/Pipelines"
_NAMESPACE = re.compile(r"^(?!AWS/)[^:\x00-\x1f\x7f-\uffff][^\x00-\x1f\x7f-\uffff]{0,254}$")

# Metric and dimension names: the alarms of the exported template refer to these.
DOMAIN, STAGE = "Domain", "Stage"
DURATION = "DurationSeconds"
RECORDS = "Records"
MATCH_RATE = "MatchRate"
SUCCEEDED, FAILED, CANCELLED = "StageSucceeded", "StageFailed", "StageCancelled"
SLA_MET = "SlaMet"
DELIVERY = "DeliverySeconds"

# A stage end waits at most about MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) seconds plus
# one back-off (under a second in botocore's standard mode), and only when the endpoint accepts
# connections and then hangs; a closed port or a refusal costs milliseconds.
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 3
MAX_ATTEMPTS = 2  # botocore's total_max_attempts: the first request and one retry


@dataclass
class Counters:
    """What this process's stage ends did with their metrics: CloudWatch cannot say what it
    never received, so the process counts it (the tests read these)."""

    published: int = 0  # stage ends whose metrics CloudWatch accepted
    failed: int = 0  # stage ends whose metrics were lost
    attempts: int = 0  # PutMetricData HTTP attempts, retries included


counters = Counters()
_warned = False
_lock = threading.Lock()
_log = logging.getLogger(__name__)


def namespace(env: Mapping[str, str] = os.environ) -> str:
    """The namespace the pipeline publishes into: ER_METRICS_NAMESPACE, else the default."""
    value = env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE
    if not _NAMESPACE.match(value):
        raise ValueError(
            f"{NAMESPACE_ENV}={value!r}: a CloudWatch namespace is 1-255 printable ASCII characters, "
            "not starting with ':' or 'AWS/'"
        )
    return value


def enabled() -> bool:
    """Whether stage ends publish: production only."""
    return deployment() == "production"


def publish_stage_end(
    store: HistoryStore,
    run_id: str,
    stage: str,
    sla_minutes: int | None,
    region: str | None = None,
    warn: Callable[[str], Any] | None = None,
) -> bool:
    """Publish the metrics of the stage end just recorded in `store` for (run_id, stage);
    True when CloudWatch accepted them. Never raises (an interrupt aside): a failure is counted
    and logged once per process through `warn` (default: this module's logger)."""
    try:
        if not enabled():
            return False  # locally: no client, no request
        row = store.get(run_id, stage)
        if row is None:
            return False
        partition = store.partition_rows(row.domain, [row.partition_key]) if stage == stages.FINAL else []
        datums = stage_datums(row, sla_minutes, partition)
        client = _client(region)
        client.put_metric_data(Namespace=namespace(), MetricData=datums)
    except Exception as exc:
        _failed(exc, warn or _log.warning)
        return False
    with _lock:
        counters.published += 1
    return True


def stage_datums(row: JobRun, sla_minutes: int | None, partition: list[JobRun]) -> list[dict]:
    """The MetricData of one stage end: `row` is its history row, `partition` every row of its
    partition (needed for the final stage's SLA only)."""
    from er_assets.history import FAILURES, Status

    at = row.end_time or dt.datetime.now(dt.timezone.utc)
    dimensions = [{"Name": DOMAIN, "Value": row.domain}, {"Name": STAGE, "Value": row.stage}]

    def datum(name: str, value: float, unit: str, dims: list[dict] = dimensions) -> dict:
        return {"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": float(value), "Unit": unit}

    failed = row.status in FAILURES
    datums = [
        datum(SUCCEEDED, row.status is Status.SUCCEEDED, "Count"),
        datum(FAILED, failed, "Count"),
        datum(CANCELLED, row.status is Status.CANCELLED, "Count"),
        datum(FAILED, failed, "Count", [dimensions[0]]),
    ]
    for name, value, unit in (
        (DURATION, row.duration_seconds, "Seconds"),
        (RECORDS, row.record_count, "Count"),
        (MATCH_RATE, row.metadata.get("match_rate") if row.stage == "matched" else None, "Percent"),
    ):
        if _finite(value):
            datums.append(datum(name, value, unit))
    delivery = _first_delivery_seconds(row, partition)
    if delivery is not None and sla_minutes:
        datums.append(datum(SLA_MET, delivery <= sla_minutes * 60, "Count"))
        datums.append(datum(DELIVERY, delivery, "Seconds"))
    return datums


def _first_delivery_seconds(row: JobRun, partition: list[JobRun]) -> float | None:
    """Seconds from the partition's first stage start to its delivery, when `row` is the
    final stage's first success (er_v_sla_compliance's elapsed time); None otherwise. A re-run
    of a delivered partition is no news: its SLA was judged at the first delivery."""
    from er_assets.history import Status

    deliveries = [
        r for r in partition if r.stage == stages.FINAL and r.status is Status.SUCCEEDED and r.end_time is not None
    ]
    if not deliveries or row.end_time is None:
        return None
    first = min(deliveries, key=lambda r: (r.end_time, r.history_id))
    if (first.run_id, first.stage) != (row.run_id, row.stage):
        return None
    started = min(r.start_time for r in partition)
    return max(0.0, (row.end_time - started).total_seconds())


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _client(region: str | None):
    """A CloudWatch client for this stage end: the region as the other production resources
    take it (ER_AWS_REGION, else the configuration's), boto3's credential chain, short timeouts
    and few attempts. The client is made per stage end (the endpoint may change between runs
    of a long-lived process), on the process's one session per region (`_session`)."""
    from botocore.config import Config

    from er_assets.resources.production import AWS_REGION_ENV

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )
    client = _session(os.environ.get(AWS_REGION_ENV) or region).client("cloudwatch", config=config)
    # Emitted once per HTTP attempt, retries included (botocore's endpoint); service id "cloudwatch".
    client.meta.events.register("before-send.cloudwatch.PutMetricData", _count_attempt)
    return client


@functools.lru_cache(maxsize=4)
def _session(region: str | None):
    """One session per process and region: credentials (an assumed role, SSO, the instance
    profile) are resolved once, with botocore's own timeouts, not at every stage end; botocore
    refreshes expiring ones itself."""
    import boto3

    return boto3.session.Session(region_name=region)


def _count_attempt(**_: Any) -> None:
    with _lock:
        counters.attempts += 1
    # None: botocore goes on and sends the request (a returned value would replace the response).


def _failed(exc: Exception, warn: Callable[[str], Any]) -> None:
    from er_assets.redact import redact_text

    global _warned
    with _lock:
        counters.failed += 1
        first, _warned = not _warned, True
    if first:
        message = " ".join(redact_text(f"{type(exc).__name__}: {exc}").split())
        warn(
            f"CloudWatch metrics not published ({message}); the stage is unaffected, and later "
            "failures of this process are counted without a message"
        )
