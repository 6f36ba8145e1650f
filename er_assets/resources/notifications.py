"""E-mail about pipeline runs: every failed or cancelled stage, the success of the final
stage, and a partition found late (`pipeline/lateness.py`).

Recipients come from the domain configuration (`notifications.emails` always, plus
`on_failure` or `on_success`) and `settings.admin_emails`, who see everything. Mail goes
through the SMTP server named in the environment; without one, messages are printed, so a
laptop needs no mail server.

Environment:
    ER_SMTP_HOST       no host: print messages instead of sending them
    ER_SMTP_PORT       default 25, 587 with starttls, 465 with ssl
    ER_SMTP_SECURITY   none | starttls | ssl (default starttls when a user is set, else none)
    ER_SMTP_USER, ER_SMTP_PASSWORD   log in when a user is set
    ER_SMTP_FROM       sender (default er-pipelines@localhost)
    ER_DAGSTER_URL     Dagster UI base URL for run links (default http://localhost:3000, where
                       `dagster dev` serves it; `make dev DAGSTER_PORT=N` sets it to port N)
"""

from __future__ import annotations

import os
import smtplib
import ssl
import sys
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal, Protocol, TextIO
from urllib.parse import quote

from er_assets import stages
from er_assets.config import Configuration
from er_assets.errors import masked_error
from er_assets.history import HistoryStore, JobRun, LatePartition, Status
from er_assets.redact import redact_text, scrub_exception

DEFAULT_DAGSTER_URL = "http://localhost:3000"
DEFAULT_SENDER = "er-pipelines@localhost"
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
SMTP_TIMEOUT = 30  # seconds; a hung mail server must not hang the sensor
# Dagster's run statuses, so a run-status sensor can pass what it has.
DAGSTER_STATUSES = {"SUCCESS": Status.SUCCEEDED, "FAILURE": Status.FAILED, "CANCELED": Status.CANCELLED}

OUTCOMES = {
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.DQ_FAILED: "was stopped by a failing data-quality check",
    Status.TIMEOUT: "timed out",
    Status.CANCELLED: "was cancelled",
}

Security = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int
    security: Security
    user: str | None
    password: str | None = field(default=None, repr=False)  # never in logs or reprs
    sender: str = DEFAULT_SENDER

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SmtpSettings:
        user = env.get("ER_SMTP_USER") or None
        security = (env.get("ER_SMTP_SECURITY") or ("starttls" if user else "none")).lower()
        if security not in DEFAULT_PORTS:
            raise ValueError(f"ER_SMTP_SECURITY={security!r}: expected one of none, starttls, ssl")
        port = env.get("ER_SMTP_PORT") or DEFAULT_PORTS[security]
        try:
            port = int(port)
        except ValueError:
            raise ValueError(f"ER_SMTP_PORT={port!r} is not a port number") from None
        return cls(
            host=env.get("ER_SMTP_HOST") or None,
            port=port,
            security=security,  # type: ignore[arg-type]
            user=user,
            password=env.get("ER_SMTP_PASSWORD") or None,
            sender=env.get("ER_SMTP_FROM") or DEFAULT_SENDER,
        )


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: SmtpSettings):
        if not settings.host:
            raise ValueError("SmtpMailer needs ER_SMTP_HOST")
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.host is not None  # __init__ refuses settings without a host; they are frozen
        context = ssl.create_default_context()  # verifies the server certificate and name
        client: smtplib.SMTP
        if s.security == "ssl":
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=SMTP_TIMEOUT)
        with client:
            if s.security == "starttls":
                client.starttls(context=context)
            if s.user:
                client.login(s.user, s.password or "")
            client.send_message(message)


class PrintMailer:
    """The local default: the message on stdout, where `dagster dev` shows it."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def send(self, message: EmailMessage) -> None:
        stream = self.stream or sys.stdout
        print(f"--- e-mail (no ER_SMTP_HOST set, not sent) ---\n{message}", file=stream, flush=True)


def mailer_from_env(env: Mapping[str, str] = os.environ) -> Mailer:
    settings = SmtpSettings.from_env(env)
    return SmtpMailer(settings) if settings.host else PrintMailer()


def _unique(addresses: Iterable[str]) -> list[str]:
    """First occurrence wins; addresses differing only in case are one mailbox."""
    seen: set[str] = set()
    result = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            result.append(address)
    return result


def _status(status: Status | str) -> Status:
    return DAGSTER_STATUSES.get(str(status).upper()) or Status(status)


def recipients(config: Configuration, domain: str, stage: str, status: Status | str) -> list[str]:
    """Who hears about this outcome: the failure list for a failed or cancelled stage (a
    cancelled partition is not delivered either, and the on-call must know), the success list
    for the last stage's success, nobody for a RUNNING stage or an earlier stage's success."""
    status = _status(status)
    notify = config.domain(domain).notifications
    if status.failure or status is Status.CANCELLED:
        extra = notify.on_failure
    elif status is Status.SUCCEEDED and stage == stages.FINAL:
        extra = notify.on_success
    else:
        return []
    return _unique([*notify.emails, *extra, *config.settings.admin_emails])


@dataclass(frozen=True)
class RunOutcome:
    """How one stage of a domain's partition ended in one run: what a notification tells.

    `status` is a history Status or Dagster's SUCCESS / FAILURE / CANCELED, held as a Status."""

    domain: str
    stage: str
    partition_key: str
    run_id: str
    status: Status
    error: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "status", _status(self.status))


def runs_url(env: Mapping[str, str] = os.environ) -> str:
    """The Dagster UI's runs page."""
    return f"{(env.get('ER_DAGSTER_URL') or DEFAULT_DAGSTER_URL).rstrip('/')}/runs"


def run_url(run_id: str, env: Mapping[str, str] = os.environ) -> str:
    return f"{runs_url(env)}/{quote(run_id, safe='')}"


def compose(
    config: Configuration,
    outcome: RunOutcome,
    *,
    history: JobRun | None = None,
    env: Mapping[str, str] = os.environ,
) -> EmailMessage | None:
    """The message for one outcome, or None when nobody is to be told."""
    domain, stage, partition_key, run_id, status = (
        outcome.domain,
        outcome.stage,
        outcome.partition_key,
        outcome.run_id,
        outcome.status,
    )
    to = recipients(config, domain, stage, status)
    if not to:
        return None
    lines = [
        f"Entity resolution {domain}/{stage} {OUTCOMES[status]} for partition {partition_key}.",
        "",
        f"Domain:     {domain}",
        f"Stage:      {stage}",
        f"Partition:  {partition_key}",
        f"Status:     {status.value}",
        f"Run id:     {run_id}",
        f"Run:        {run_url(run_id, env)}",
    ]
    if history is not None:
        if history.record_count is not None:
            lines.append(f"Records:    {history.record_count:,}")
        if history.duration_seconds is not None:
            lines.append(f"Duration:   {history.duration_seconds:,.0f} s")
        if history.autosys_job_name:
            lines.append(f"AutoSys:    {history.autosys_job_name}")
    if outcome.error:
        lines += ["", "Error:", redact_text(outcome.error).strip()]
    message = EmailMessage()
    message["Subject"] = f"[ER {status.value}] {domain}/{stage} partition {partition_key}"
    message["From"] = SmtpSettings.from_env(env).sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="er-pipelines")
    message["X-ER-Run-Id"] = run_id  # lets mail rules and tests find the run
    message.set_content("\n".join(lines) + "\n")
    return message


def notify_run(
    config: Configuration,
    outcome: RunOutcome,
    *,
    store: HistoryStore | None = None,
    mailer: Mailer | None = None,
    env: Mapping[str, str] = os.environ,
) -> bool:
    """Tell the right people how a run ended, at most once per (run_id, status).

    For Dagster run-status sensors: call it on every evaluation; it returns True only for
    the call that sent the mail. The once-only guarantee is a claim row in the job history
    (`store`, default HistoryStore.from_env()), taken before sending and given back if
    sending fails, so a failed send is retried by the next evaluation.
    """
    to = recipients(config, outcome.domain, outcome.stage, outcome.status)
    if not to:
        return False
    own_store = store is None
    store = store or HistoryStore.from_env(env)
    try:
        message = compose(config, outcome, history=store.get(outcome.run_id, outcome.stage), env=env)
        assert message is not None  # compose finds the recipients found above
        if not store.claim_notification(outcome.run_id, outcome.status, outcome.domain, to):
            return False
        _send_claimed(
            mailer or mailer_from_env(env), message, lambda: store.release_notification(outcome.run_id, outcome.status)
        )
        return True
    finally:
        if own_store:
            store.close()


def compose_late(config: Configuration, late: LatePartition, env: Mapping[str, str] = os.environ) -> EmailMessage:
    """The message for a partition found late: when it was due, where it stands, where to look."""
    domain = config.domain(late.domain)
    zone = zoneinfo.ZoneInfo(domain.schedule.timezone)
    due = late.due_at.astimezone(zone)
    lines = [
        f"Entity resolution {late.domain} partition {late.partition_key} is late: it was due by "
        f"{due:%Y-%m-%d %H:%M} {domain.schedule.timezone} ({domain.schedule.sla_minutes} minutes after its "
        f"schedule fired) and its {stages.FINAL} stage has not succeeded.",
        "",
        f"Domain:     {late.domain}",
        f"Partition:  {late.partition_key}",
        f"Due:        {due.isoformat(timespec='minutes')}",
        f"State:      {late.state}",
        f"AutoSys:    autorep -J {stages.box_job(domain.autosys.job_prefix)}",
        f"Runs:       {runs_url(env)}",
        "",
        "Never started: is the box on hold, waiting for its condition, or AutoSys down? To run it by hand:",
        f"  autosys-bridge run {late.domain} all --date {late.partition_key}",
    ]
    message = EmailMessage()
    message["Subject"] = f"[ER LATE] {late.domain} partition {late.partition_key}: {late.state}"
    message["From"] = SmtpSettings.from_env(env).sender
    message["To"] = ", ".join(recipients(config, late.domain, stages.FINAL, Status.FAILED))
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="er-pipelines")
    message.set_content("\n".join(lines) + "\n")
    return message


def notify_late(
    config: Configuration,
    late: LatePartition,
    *,
    store: HistoryStore,
    mailer: Mailer | None = None,
    env: Mapping[str, str] = os.environ,
) -> bool:
    """Mail a late partition to the domain's failure list, once: the row in
    `er_late_partition` is the claim, given back when sending fails so the next look retries."""
    to = recipients(config, late.domain, stages.FINAL, Status.FAILED)
    if not store.claim_late(late.domain, late.partition_key, late.due_at, late.state, to):
        return False
    _send_claimed(
        mailer or mailer_from_env(env),
        compose_late(config, late, env),
        lambda: store.release_late(late.domain, late.partition_key),
    )
    return True


def _send_claimed(mailer: Mailer, message: EmailMessage, release: Callable[[], None]) -> None:
    """Send a message whose once-only claim is taken; a failed send gives the claim back
    (`release`) so the next sensor evaluation retries it."""
    try:
        mailer.send(message)
    except BaseException as exc:
        release()
        # A sensor's error is logged and stored with its tick: mask what the server echoed.
        if not scrub_exception(exc):
            raise masked_error(exc) from None
        raise
