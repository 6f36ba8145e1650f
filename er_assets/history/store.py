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

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from er_assets import stages
from er_assets.environment import history_url
from er_assets.history import schema
from er_assets.history.dialect import UTC, HistoryError, aware, bind_type, engine_for, read_value
from er_assets.history.model import JobRun, Status, error_key
from er_assets.redact import redact, redact_text

H = schema.job_history


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

    def __init__(self, engine: sa.Engine):
        self._engine = engine
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._migrated = False

    @classmethod
    def from_url(cls, url: str) -> HistoryStore:
        """`sqlite:///history.db`, `sqlite://` (in memory) or `postgresql://user@host/db`."""
        return cls(engine_for(url))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HistoryStore:
        """The store named by ER_HISTORY_URL; without it, the local deployment's SQLite
        file (ER_DATA_DIR/history.db), so local runs keep their history with no setup
        (`environment.history_url` decides)."""
        try:
            return cls.from_url(history_url(env))
        except ValueError as exc:
            raise HistoryError(str(exc)) from None

    @property
    def dialect(self) -> sa.Dialect:
        """The database's SQLAlchemy dialect: `.name` is "sqlite" or "postgresql"."""
        return self._engine.dialect

    # -- connection and schema -------------------------------------------------------

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()
            self._migrated = False  # an in-memory database is gone with its connection

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        # A connection does not survive fork (Dagster's executors fork or spawn workers):
        # a child drops the parent's, unclosed (closing would end the parent's session too).
        if self._pid != os.getpid():
            self._engine.dispose(close=False)
            self._pid, self._migrated = os.getpid(), False
        try:
            conn = self._engine.connect()
        except sa.exc.DBAPIError as exc:
            # libpq names host and user, which the operator needs; HistoryError masks a
            # password echoed back from the URL.
            raise HistoryError(f"cannot connect to the job history database: {exc.orig}".strip()) from None
        with conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self._lock, self._connect() as conn:
            if not self._migrated:
                with conn.begin():
                    self._migrate(conn)
                self._migrated = True
            with conn.begin():
                try:
                    yield conn
                except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                    if conn.dialect.name != "postgresql":
                        raise  # SQLite's are a locked or broken file, not an unreachable service
                    # The server went away mid-statement (restart, failover): unreachable, exit 5.
                    raise HistoryError(f"the job history database failed: {exc.orig}".strip()) from None

    def _migrate(self, conn: sa.Connection) -> None:
        """Bring the schema to schema.LATEST with Alembic, in this one transaction."""
        if conn.dialect.name == "postgresql":
            # Serialise concurrent first uses: two processes must not both apply a
            # migration. SQLite's BEGIN IMMEDIATE already holds the database lock here.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('er_schema_version'))"))
        current = _version(conn)
        if current > schema.LATEST:
            raise HistoryError(
                f"job history schema is at version {current}, newer than this code knows ({schema.LATEST}); "
                "upgrade er-pipelines"
            )
        stamped = sa.inspect(conn).has_table("alembic_version")
        if current == schema.LATEST and stamped:
            return
        # Imported only now: most first uses have nothing to migrate, and the bridge's
        # short-lived processes are spared the import.
        from alembic import command
        from alembic.config import Config

        config = Config(attributes={"connection": conn})
        config.set_main_option("script_location", str(schema.MIGRATIONS))
        if current and not stamped:
            # Written by a release before Alembic: each schema version's revision is named
            # by its number, so the database is at revision MAX(version).
            command.stamp(config, str(current))
        command.upgrade(config, str(schema.LATEST))

    @property
    def schema_version(self) -> int:
        with self._transaction() as conn:
            return _version(conn)

    def applied_version(self) -> int:
        """The last migration the database ran, 0 when it has none yet, read without
        migrating it (`doctor` looks, the first stage upgrades)."""
        database = self._engine.url.database
        if self.dialect.name == "sqlite" and database != ":memory:" and not Path(str(database)).exists():
            return 0  # not created yet; looking must not create it
        with self._lock, self._connect() as conn, conn.begin():
            return _version(conn)

    # -- writes -------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        """INSERT ... ON CONFLICT, which both databases speak (each dialect its own class)."""
        return (postgresql if self.dialect.name == "postgresql" else sqlite).insert(table)

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
        insert = self._insert(H).values(
            run_id=run_id,
            stage=stage,
            domain=domain,
            partition_key=partition_key,
            process_date=_date(process_date),
            triggered_by=trigger,
            job_name=job_name,
            autosys_job_name=autosys_job_name,
            start_time=aware(started_at or _now()),
            status=Status.RUNNING.value,
            metadata={},
            attempt=attempt,
        )
        cleared = ("end_time", "duration_seconds", "record_count", "exit_code", "error_message", "error_key")
        upsert = insert.on_conflict_do_update(
            index_elements=[H.c.run_id, H.c.stage],
            set_={
                **{name: insert.excluded[name] for name in ("attempt", "status", "metadata")},
                **dict.fromkeys(cleared),
            },
            where=H.c.attempt < insert.excluded.attempt,
        )
        with self._transaction() as conn:
            return _wrote(conn, upsert)

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
        ended_at = aware(ended_at or _now())
        message = redact_text(error_message)
        row = (H.c.run_id == run_id) & (H.c.stage == stage)
        with self._transaction() as conn:
            started = conn.scalar(sa.select(H.c.start_time).where(row))
            if started is None:
                raise LookupError(f"no history for run {run_id} stage {stage}: record_start was not called")
            end = (
                sa.update(H)
                .where(row, H.c.status == Status.RUNNING.value, H.c.attempt == attempt)
                .values(
                    status=status.value,
                    end_time=ended_at,
                    # Milliseconds, as the releases stored it (computed here: the SQL for it differs
                    # between the databases).
                    duration_seconds=round((ended_at - started).total_seconds(), 3),
                    record_count=record_count,
                    exit_code=exit_code,
                    error_message=message,
                    error_key=error_key(message),
                    metadata=redact(dict(metadata or {})),
                )
            )
            return conn.execute(end).rowcount == 1

    def sync_sla(self, minutes_by_domain: Mapping[str, int]) -> None:
        """Make `er_sla` equal to the mapping (domain -> minutes from first start to the
        final stage's success); the configuration is its source of truth."""
        bad = {d: m for d, m in minutes_by_domain.items() if not isinstance(m, int) or m <= 0}
        if bad:
            raise ValueError(f"SLA minutes must be positive integers: {bad}")
        now = _now()
        rows = [{"domain": d, "sla_minutes": m, "updated_at": now} for d, m in sorted(minutes_by_domain.items())]
        with self._transaction() as conn:
            conn.execute(sa.delete(schema.sla))
            if rows:
                conn.execute(sa.insert(schema.sla), rows)

    # -- late partitions ------------------------------------------------------------------

    def partition_rows(self, domain: str, partition_keys: list[str]) -> list[JobRun]:
        """Every row of these partitions of the domain, oldest first."""
        if not partition_keys:
            return []
        return self._job_runs((H.c.domain == domain) & H.c.partition_key.in_(partition_keys))

    def claim_late(
        self, domain: str, partition_key: str, due_at: dt.datetime, state: str, recipients: list[str]
    ) -> bool:
        """Record the partition as found late; False if it already was (it is mailed once)."""
        claim = self._insert(schema.late_partition).values(
            domain=domain,
            partition_key=partition_key,
            due_at=aware(due_at),
            state=state,
            noticed_at=_now(),
            recipients=", ".join(recipients),
        )
        with self._transaction() as conn:
            return _wrote(conn, claim.on_conflict_do_nothing())

    def release_late(self, domain: str, partition_key: str) -> None:
        """Give a claim back when its mail could not be sent, so the next look retries it."""
        late = schema.late_partition.c
        with self._transaction() as conn:
            conn.execute(
                sa.delete(schema.late_partition).where(late.domain == domain, late.partition_key == partition_key)
            )

    def late_partitions(self) -> list[dict[str, Any]]:
        """Every partition found late, newest due first, with when (if ever) it was delivered."""
        late = schema.late_partition
        delivered = (
            sa.select(sa.func.min(H.c.end_time))
            .where(
                H.c.domain == late.c.domain,
                H.c.partition_key == late.c.partition_key,
                H.c.stage == stages.FINAL,
                H.c.status == Status.SUCCEEDED.value,
            )
            .scalar_subquery()
        )
        query = sa.select(late, delivered.label("delivered_at")).order_by(late.c.due_at.desc(), late.c.domain)
        with self._transaction() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- notification log -----------------------------------------------------------------

    def claim_notification(self, run_id: str, status: Status | str, domain: str, recipients: list[str]) -> bool:
        """Reserve the one mail for (run_id, status); False if it was already claimed.

        The unique key makes this safe across sensor re-evaluations, threads and
        processes: exactly one caller gets True.
        """
        claim = self._insert(schema.notification_log).values(
            run_id=run_id, status=Status(status).value, domain=domain, recipients=", ".join(recipients), sent_at=_now()
        )
        with self._transaction() as conn:
            return _wrote(conn, claim.on_conflict_do_nothing())

    def release_notification(self, run_id: str, status: Status | str) -> None:
        """Give a claim back after the mail could not be sent, so a later evaluation retries."""
        log = schema.notification_log.c
        with self._transaction() as conn:
            conn.execute(
                sa.delete(schema.notification_log).where(log.run_id == run_id, log.status == Status(status).value)
            )

    def notifications(self, run_id: str | None = None) -> list[dict[str, Any]]:
        log = schema.notification_log
        query = sa.select(log).order_by(log.c.sent_at)
        if run_id:
            query = query.where(log.c.run_id == run_id)
        with self._transaction() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- reads --------------------------------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run a `:name`-parameterised SELECT; values come back as Python types
        (dates, aware UTC datetimes, floats, dicts) whichever the database."""
        typed = [sa.bindparam(name, type_=kind) for name, value in params.items() if (kind := bind_type(value))]
        with self._transaction() as conn:
            result = conn.execute(sa.text(sql).bindparams(*typed), params)
            if not result.returns_rows:
                return []
            return [{k: read_value(k, v) for k, v in row.items()} for row in result.mappings()]

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
        equal = {"domain": domain, "stage": stage, "status": Status(status).value if status else None, "run_id": run_id}
        where = [H.c[name] == value for name, value in equal.items() if value is not None]
        if since is not None:
            where.append(H.c.start_time >= aware(since))
        return self._job_runs(*where)

    def _job_runs(self, *where: Any) -> list[JobRun]:
        query = sa.select(H).where(*where).order_by(H.c.start_time, H.c.history_id)
        with self._transaction() as conn:
            return [_job_run(row) for row in conn.execute(query).mappings()]

    def get(self, run_id: str, stage: str) -> JobRun | None:
        found = self.rows(run_id=run_id, stage=stage)
        return found[0] if found else None

    def view(self, name: str, since: dt.date | None = None) -> list[dict[str, Any]]:
        """Rows of one dashboard view (see schema.py), from the UTC day `since` on."""
        if name not in schema.VIEWS:
            raise ValueError(f"unknown view {name!r}; expected one of {schema.VIEWS}")
        if since is None:
            return self.query(f"SELECT * FROM {name}")
        if name == "er_v_sla_compliance":
            start = dt.datetime.combine(since, dt.time(), UTC)
            return self.query(f"SELECT * FROM {name} WHERE started_at >= :since", since=start)
        return self.query(f"SELECT * FROM {name} WHERE day >= :since", since=since)


def _wrote(conn: sa.Connection, insert: Any) -> bool:
    """Whether an INSERT ... ON CONFLICT wrote its row: SQLAlchemy keeps an INSERT's row
    count only when asked."""
    return conn.execute(insert, execution_options={"preserve_rowcount": True}).rowcount == 1


def _version(conn: sa.Connection) -> int:
    """MAX(version) of er_schema_version; 0 for a database without it."""
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    return conn.scalar(sa.select(sa.func.max(schema.schema_version.c.version))) or 0


def _job_run(row: sa.RowMapping) -> JobRun:
    values = dict(row)
    values["status"] = Status(values["status"])
    values["trigger"] = values.pop("triggered_by")
    return JobRun(**values)
