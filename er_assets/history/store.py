"""HistoryStore: one row per (Dagster run, stage) in `er_job_history`.

Each stage writes its own row as it starts and ends (er_assets/pipeline/recording.py); the
bridge also ends the rows of runs whose process died or was signalled before the stage could
(autosys_bridge/runner.py). So a row may be written twice, and both writes are idempotent:
`record_start` inserts or does nothing; `record_end` finishes a RUNNING row and ignores any
later end for it. A re-execution is a new Dagster run with its own row; a step retried
inside one run (a RetryPolicy) is a higher `attempt`, which reopens the row, so the row
always tells the stage's final outcome. Every value is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from er_assets import stages
from er_assets.environment import history_url
from er_assets.history import schema
from er_assets.history.dialect import UTC, Dialect, HistoryError, SQLite, dialect_for
from er_assets.history.model import JobRun, Status, error_key
from er_assets.redact import redact, redact_text

_COLUMNS = (
    "history_id, run_id, stage, domain, partition_key, process_date, triggered_by, job_name, autosys_job_name, "
    "start_time, end_time, status, record_count, duration_seconds, exit_code, error_message, error_key, metadata, "
    "attempt"
)

# A repeated start changes nothing unless it is a later attempt, which reopens the row.
_START = """
INSERT INTO er_job_history (run_id, stage, domain, partition_key, process_date, triggered_by,
                            job_name, autosys_job_name, start_time, status, metadata, attempt)
VALUES (:run_id, :stage, :domain, :partition_key, :process_date, :triggered_by,
        :job_name, :autosys_job_name, :start_time, :status, :metadata, :attempt)
ON CONFLICT (run_id, stage) DO UPDATE
SET attempt = excluded.attempt, status = excluded.status, end_time = NULL,
    duration_seconds = NULL, record_count = NULL, exit_code = NULL,
    error_message = NULL, error_key = NULL, metadata = excluded.metadata
WHERE er_job_history.attempt < excluded.attempt
"""
# Only the running attempt ends, once; {duration} is the dialect's arithmetic.
_END = """
UPDATE er_job_history
SET status = :status, end_time = :end_time, duration_seconds = {duration},
    record_count = :record_count, exit_code = :exit_code,
    error_message = :error_message, error_key = :error_key, metadata = :metadata
WHERE run_id = :run_id AND stage = :stage AND status = :running AND attempt = :attempt
"""
_FOUND = "SELECT 1 AS found FROM er_job_history WHERE run_id = :run_id AND stage = :stage"


def _check_start(attempt: int, **required: str) -> None:
    if attempt < 1:
        raise ValueError(f"record_start: attempt counts from 1, not {attempt}")
    for name, value in required.items():
        if not value:
            raise ValueError(f"record_start: {name} must not be empty")


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise TypeError("process_date is a date, not a datetime")
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


class HistoryStore:
    """Job history on SQLite (embedded default) or PostgreSQL (production).

    One connection per store and process, opened on first use, guarded by a lock so
    sensors on several threads can share a store. The schema is created or migrated
    on first use.
    """

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = 0

    @classmethod
    def from_url(cls, url: str) -> HistoryStore:
        """`sqlite:///history.db`, `sqlite://` (in memory) or `postgresql://user@host/db`."""
        return cls(dialect_for(url))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HistoryStore:
        """The store named by ER_HISTORY_URL; without it, the local deployment's SQLite
        file (ER_DATA_DIR/history.db), so local runs keep their history with no setup
        (`environment.history_url` decides)."""
        try:
            return cls.from_url(history_url(env))
        except ValueError as exc:
            raise HistoryError(str(exc)) from None

    # -- connection and schema -------------------------------------------------------

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            # A connection does not survive fork (Dagster's executors fork or spawn
            # workers) nor a database restart: open a fresh one in either case.
            if self._conn is None or self._pid != os.getpid() or self.dialect.is_closed(self._conn):
                self._conn = self.dialect.connect()
                self._pid = os.getpid()
                try:
                    self._migrate()
                except BaseException:
                    # Drop the connection, or the next call would skip the schema check.
                    self.close()
                    raise
            with self.dialect.transaction(self._conn) as cur:
                yield cur

    def _migrate(self) -> None:
        with self.dialect.transaction(self._conn) as cur:
            cur.execute(self.dialect.ddl(schema.VERSION_TABLE))
            if self.dialect.name == "postgresql":
                # Serialise concurrent first uses: CREATE TABLE IF NOT EXISTS still races in
                # Postgres, and two processes must not both apply a migration. SQLite's
                # BEGIN IMMEDIATE already holds the database lock here.
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('er_schema_version'))")
            cur.execute("SELECT MAX(version) AS v FROM er_schema_version")
            current = _aggregate(cur)["v"] or 0
            if current > schema.LATEST:
                raise HistoryError(
                    f"job history schema is at version {current}, newer than this code knows ({schema.LATEST}); "
                    "upgrade er-pipelines"
                )
            for migration in schema.MIGRATIONS:
                version, description, _ = migration
                if version <= current:
                    continue
                for statement in schema.statements(migration, self.dialect):
                    cur.execute(self.dialect.ddl(statement))
                cur.execute(
                    self.dialect.sql(
                        "INSERT INTO er_schema_version (version, description, applied_at) VALUES (:v, :d, :t)"
                    ),
                    {"v": version, "d": description, "t": self.dialect.timestamp(_now())},
                )

    def _execute(self, cur: Any, sql: str, params: Mapping[str, Any]) -> Any:
        cur.execute(self.dialect.sql(sql), dict(params))
        return cur

    def _read(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.dialect.read_value(k, v) for k, v in dict(row).items()}

    @property
    def schema_version(self) -> int:
        with self._transaction() as cur:
            return _aggregate(self._execute(cur, "SELECT MAX(version) AS v FROM er_schema_version", {}))["v"]

    def applied_version(self) -> int:
        """The last migration the database ran, 0 when it has none yet, read without
        migrating it (`doctor` looks, the first stage upgrades)."""
        if isinstance(self.dialect, SQLite) and not Path(self.dialect.path).exists():
            return 0  # not created yet; looking must not create it
        conn = self.dialect.connect()
        try:
            with self.dialect.transaction(conn) as cur:
                self._execute(cur, self.dialect.TABLE_EXISTS, {"name": "er_schema_version"})
                if not _aggregate(cur)["n"]:
                    return 0
                return _aggregate(self._execute(cur, "SELECT MAX(version) AS v FROM er_schema_version", {}))["v"] or 0
        finally:
            conn.close()

    # -- writes -------------------------------------------------------------------------

    def record_start(
        self,
        run_id: str,
        stage: str,
        domain: str,
        partition_key: str,
        process_date: dt.date | str,
        trigger: str,
        job_name: str | None = None,
        autosys_job_name: str | None = None,
        *,
        started_at: dt.datetime | None = None,
        attempt: int = 1,
    ) -> bool:
        """Record that a stage started; True if this call created (or reopened) the row.

        `trigger` says what started the run: `autosys:<JOB>`, `schedule:<name>`,
        `backfill:<id>`, `ui`, `cli`. A repeated start for the same (run_id, stage)
        changes nothing, whatever its values, unless its `attempt` (Dagster's
        retry_number + 1) is higher: then the row is RUNNING again, its outcome cleared,
        its start time kept, so duration and SLA count from the first attempt.
        """
        _check_start(attempt, run_id=run_id, stage=stage, domain=domain, partition_key=partition_key, trigger=trigger)
        row = {
            "run_id": run_id,
            "stage": stage,
            "domain": domain,
            "partition_key": partition_key,
            "process_date": self.dialect.date(_date(process_date)),
            "triggered_by": trigger,
            "job_name": job_name,
            "autosys_job_name": autosys_job_name,
            "start_time": self.dialect.timestamp(started_at or _now()),
            "status": Status.RUNNING.value,
            "metadata": self.dialect.json({}),
            "attempt": attempt,
        }
        with self._transaction() as cur:
            return self._execute(cur, _START, row).rowcount == 1

    def record_end(
        self,
        run_id: str,
        stage: str,
        status: Status | str,
        record_count: int | None = None,
        exit_code: int | None = None,
        error_message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        ended_at: dt.datetime | None = None,
        attempt: int = 1,
    ) -> bool:
        """Record how a started stage ended; True if this call ended it.

        An end event for a stage that already ended, or for another attempt than the
        running one, is ignored (False): the first end of each attempt wins. Error text and
        metadata are redacted of secrets before they are stored. Raises LookupError when the
        stage never started: call `record_start` first (it is idempotent, so a caller that
        cannot know whether the stage recorded its start may always call both).
        """
        status = Status(status)
        if not status.terminal:
            raise ValueError("record_end needs a terminal status, not RUNNING")
        message = redact_text(error_message)
        outcome = {
            "run_id": run_id,
            "stage": stage,
            "attempt": attempt,
            "running": Status.RUNNING.value,
            "status": status.value,
            "end_time": self.dialect.timestamp(ended_at or _now()),
            "record_count": record_count,
            "exit_code": exit_code,
            "error_message": message,
            "error_key": error_key(message),
            "metadata": self.dialect.json(redact(dict(metadata or {}))),
        }
        with self._transaction() as cur:
            if self._execute(cur, self._end_sql(), outcome).rowcount == 1:
                return True
            if _first(self._execute(cur, _FOUND, outcome)) is None:
                raise LookupError(f"no history for run {run_id} stage {stage}: record_start was not called")
            return False

    def _end_sql(self) -> str:
        # Milliseconds: SQLite's julianday arithmetic is exact only to a few microseconds,
        # and both databases must store the same number.
        duration = self.dialect.round(self.dialect.seconds_between("start_time", ":end_time"), 3)
        return _END.format(duration=duration)

    def sync_sla(self, minutes_by_domain: Mapping[str, int]) -> None:
        """Make `er_sla` equal to the mapping (domain -> minutes from first start to the
        final stage's success); the configuration is its source of truth."""
        bad = {d: m for d, m in minutes_by_domain.items() if not isinstance(m, int) or m <= 0}
        if bad:
            raise ValueError(f"SLA minutes must be positive integers: {bad}")
        now = self.dialect.timestamp(_now())
        with self._transaction() as cur:
            self._execute(cur, "DELETE FROM er_sla", {})
            for domain, minutes in sorted(minutes_by_domain.items()):
                self._execute(
                    cur,
                    "INSERT INTO er_sla (domain, sla_minutes, updated_at) VALUES (:domain, :minutes, :now)",
                    {"domain": domain, "minutes": minutes, "now": now},
                )

    # -- late partitions ------------------------------------------------------------------

    def partition_rows(self, domain: str, partition_keys: list[str]) -> list[JobRun]:
        """Every row of these partitions of the domain, oldest first."""
        if not partition_keys:
            return []
        names = {f"p{i}": key for i, key in enumerate(partition_keys)}
        keys = ", ".join(f":{name}" for name in names)
        result = self.query(
            f"SELECT {_COLUMNS} FROM er_job_history WHERE domain = :domain AND partition_key IN ({keys}) "
            "ORDER BY start_time, history_id",
            domain=domain,
            **names,
        )
        return [_job_run(row) for row in result]

    def claim_late(
        self, domain: str, partition_key: str, due_at: dt.datetime, state: str, recipients: list[str]
    ) -> bool:
        """Record the partition as found late; False if it already was (it is mailed once)."""
        with self._transaction() as cur:
            self._execute(
                cur,
                """
                INSERT INTO er_late_partition (domain, partition_key, due_at, state, noticed_at, recipients)
                VALUES (:domain, :partition_key, :due_at, :state, :now, :recipients)
                ON CONFLICT (domain, partition_key) DO NOTHING
                """,
                {
                    "domain": domain,
                    "partition_key": partition_key,
                    "due_at": self.dialect.timestamp(due_at),
                    "state": state,
                    "now": self.dialect.timestamp(_now()),
                    "recipients": ", ".join(recipients),
                },
            )
            return cur.rowcount == 1

    def release_late(self, domain: str, partition_key: str) -> None:
        """Give a claim back when its mail could not be sent, so the next look retries it."""
        with self._transaction() as cur:
            self._execute(
                cur,
                "DELETE FROM er_late_partition WHERE domain = :domain AND partition_key = :partition_key",
                {"domain": domain, "partition_key": partition_key},
            )

    def late_partitions(self) -> list[dict[str, Any]]:
        """Every partition found late, newest due first, with when (if ever) it was delivered."""
        return self.query(
            """
            SELECT l.domain, l.partition_key, l.due_at, l.state, l.noticed_at, l.recipients,
                   (SELECT MIN(h.end_time) FROM er_job_history h
                    WHERE h.domain = l.domain AND h.partition_key = l.partition_key
                      AND h.stage = :final AND h.status = 'SUCCEEDED') AS delivered_at
            FROM er_late_partition l
            ORDER BY l.due_at DESC, l.domain
            """,
            final=stages.FINAL,
        )

    # -- notification log -----------------------------------------------------------------

    def claim_notification(self, run_id: str, status: Status | str, domain: str, recipients: list[str]) -> bool:
        """Reserve the one mail for (run_id, status); False if it was already claimed.

        The unique key makes this safe across sensor re-evaluations, threads and
        processes: exactly one caller gets True.
        """
        with self._transaction() as cur:
            self._execute(
                cur,
                """
                INSERT INTO er_notification_log (run_id, status, domain, recipients, sent_at)
                VALUES (:run_id, :status, :domain, :recipients, :now)
                ON CONFLICT (run_id, status) DO NOTHING
                """,
                {
                    "run_id": run_id,
                    "status": Status(status).value,
                    "domain": domain,
                    "recipients": ", ".join(recipients),
                    "now": self.dialect.timestamp(_now()),
                },
            )
            return cur.rowcount == 1

    def release_notification(self, run_id: str, status: Status | str) -> None:
        """Give a claim back after the mail could not be sent, so a later evaluation retries."""
        with self._transaction() as cur:
            self._execute(
                cur,
                "DELETE FROM er_notification_log WHERE run_id = :run_id AND status = :status",
                {"run_id": run_id, "status": Status(status).value},
            )

    def notifications(self, run_id: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE run_id = :run_id", {"run_id": run_id}) if run_id else ("", {})
        return self.query(
            f"SELECT run_id, status, domain, recipients, sent_at FROM er_notification_log {where} ORDER BY sent_at",
            **params,
        )

    # -- reads --------------------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run a `:name`-parameterised SELECT; values come back as Python types
        (dates, aware UTC datetimes, floats, dicts) whichever the database."""
        with self._transaction() as cur:
            return [self._read(row) for row in self._execute(cur, sql, params).fetchall()]

    def rows(
        self,
        *,
        domain: str | None = None,
        stage: str | None = None,
        status: Status | str | None = None,
        run_id: str | None = None,
        since: dt.datetime | None = None,
    ) -> list[JobRun]:
        """History rows, oldest first, filtered by whichever arguments are given."""
        filters = {
            "domain = :domain": domain,
            "stage = :stage": stage,
            "status = :status": Status(status).value if status else None,
            "run_id = :run_id": run_id,
            "start_time >= :since": self.dialect.timestamp(since) if since else None,
        }
        chosen = {clause: value for clause, value in filters.items() if value is not None}
        where = " AND ".join(chosen) or "1 = 1"
        params = {clause.rsplit(":", 1)[1]: value for clause, value in chosen.items()}
        result = self.query(
            f"SELECT {_COLUMNS} FROM er_job_history WHERE {where} ORDER BY start_time, history_id", **params
        )
        return [_job_run(row) for row in result]

    def get(self, run_id: str, stage: str) -> JobRun | None:
        found = self.rows(run_id=run_id, stage=stage)
        return found[0] if found else None

    def view(self, name: str, since: dt.date | None = None) -> list[dict[str, Any]]:
        """Rows of one dashboard view (see schema.py), from the UTC day `since` on."""
        if name not in schema.VIEWS:
            raise ValueError(f"unknown view {name!r}; expected one of {schema.VIEWS}")
        if since is None:
            return self.query(f"SELECT * FROM {name}")
        column = "started_at" if name == "er_v_sla_compliance" else "day"
        bound = (
            self.dialect.timestamp(dt.datetime.combine(since, dt.time(), UTC))
            if column == "started_at"
            else self.dialect.date(since)
        )
        return self.query(f"SELECT * FROM {name} WHERE {column} >= :since", since=bound)


def _first(cur: Any) -> Mapping[str, Any] | None:
    row = cur.fetchone()
    return None if row is None else dict(row)


def _aggregate(cur: Any) -> Mapping[str, Any]:
    """The row of an aggregate query without GROUP BY, which always returns exactly one."""
    row = _first(cur)
    assert row is not None
    return row


def _job_run(row: Mapping[str, Any]) -> JobRun:
    values = dict(row)
    values["status"] = Status(values["status"])
    values["trigger"] = values.pop("triggered_by")
    return JobRun(**values)
