"""The two databases the history lives in: the SQLAlchemy engine for a history URL, with what
each database needs set up, and the types whose stored form differs between them.

PostgreSQL is spoken through psycopg 3 (`postgresql+psycopg`): the history has always used it
(so libpq options in users' URLs and the error texts stay as they were), the production extra
ships it for the history, and SQLAlchemy 2.1 maps a bare postgresql:// to it anyway. psycopg2
is in the extra only for dagster-postgres, whose NOTIFY fails on psycopg 3.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.pool import StaticPool

from er_assets import exit_codes
from er_assets.redact import Redacting

UTC = dt.timezone.utc
_DUMPS = partial(json.dumps, sort_keys=True, default=str)


class HistoryError(Redacting):
    """The history store cannot be used as configured; the message never shows a password."""

    exit_code = exit_codes.SERVICE_UNAVAILABLE


class Timestamp(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware datetime, read back in UTC. TIMESTAMPTZ on PostgreSQL; on SQLite the
    ISO-8601 UTC text every release has written, which sorts chronologically and which
    SQLite's date functions (used by the views) read. SQLAlchemy's own SQLite DATETIME
    would write another format, and rows of both formats would not sort together."""

    impl = sa.TIMESTAMP(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.Text() if dialect.name == "sqlite" else self.impl_instance)

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = aware(value)
        return value.isoformat(timespec="microseconds") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        return None if value is None else _utc(value)


def aware(value: dt.datetime) -> dt.datetime:
    """The time in UTC; a naive one is refused, as it could be any zone's."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: history times must be timezone-aware")
    return value.astimezone(UTC)


def _utc(value: str | dt.datetime) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# JSONB on PostgreSQL; on SQLite, text (checked by json_valid in the table).
JSON = sa.JSON().with_variant(JSONB(), "postgresql")

# Result columns of free SQL (HistoryStore.query, the views) that SQLite hands back as text.
DATE_COLUMNS = frozenset({"process_date", "day"})
TIME_COLUMNS = frozenset(
    {
        "start_time",
        "end_time",
        "started_at",
        "delivered_at",
        "last_seen",
        "sent_at",
        "applied_at",
        "due_at",
        "noticed_at",
    }
)


def read_value(column: str, value: Any) -> Any:
    """Driver value -> Python value, so both databases give callers the same types."""
    if isinstance(value, Decimal):  # PostgreSQL's NUMERIC aggregates; callers want plain numbers
        return float(value)
    if isinstance(value, dt.datetime) or (column in TIME_COLUMNS and isinstance(value, str)):
        return _utc(value)
    if column in DATE_COLUMNS and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if column == "metadata" and isinstance(value, str):
        return json.loads(value)
    return value


def bind_type(value: Any) -> sa.types.TypeEngine[Any] | None:
    """The type a free-SQL parameter is bound as: times and dates in their stored form."""
    if isinstance(value, dt.datetime):
        return Timestamp()
    return sa.Date() if isinstance(value, dt.date) else None


def engine_for(url: str) -> sa.Engine:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite://` (in memory),
    or any libpq URL: `postgresql://user@host:5432/db?sslmode=require`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc:
            raise HistoryError(
                f"sqlite URL takes no host: use sqlite:///relative.db or sqlite:////absolute.db, not {url!r}"
            )
        return _sqlite(unquote(parts.path[1:]) or ":memory:")
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return _postgres(url)
    raise HistoryError(f"unsupported job history URL scheme {scheme!r}: expected sqlite:/// or postgresql://")


def _sqlite(path: str) -> sa.Engine:
    memory = path == ":memory:"
    engine = sa.create_engine(
        sa.URL.create("sqlite", database=path),
        # timeout: how long a writer waits for another's lock (SQLite's busy timeout).
        # check_same_thread=False: the store serialises its use of the connection itself.
        connect_args={"timeout": 30, "check_same_thread": False},
        # One connection per store, as for a file; an in-memory database lives only in it.
        poolclass=StaticPool,
        json_serializer=_DUMPS,
        hide_parameters=True,  # errors and logs show no row values (error texts, metadata)
    )

    @sa.event.listens_for(engine, "do_connect")
    def make_folder(*_: Any) -> None:
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @sa.event.listens_for(engine, "connect")
    def configure(conn: Any, _: Any) -> None:
        # Transactions are SQLAlchemy's, begun below, so DDL commits with the rest (sqlite3
        # would otherwise commit before each DDL statement itself).
        conn.isolation_level = None
        if not memory:
            # WAL lets the report and Grafana read while a run writes; in WAL mode
            # synchronous=NORMAL cannot corrupt the file, it may only lose the last
            # commits on power loss, and it spares an fsync per history event.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

    @sa.event.listens_for(engine, "begin")
    def begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: two processes that both read then write
        # would otherwise deadlock on the lock upgrade and one would fail with SQLITE_BUSY;
        # it also serialises two processes' first use, so a migration runs once.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url).set(drivername="postgresql+psycopg")
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise HistoryError(f"cannot read the job history URL: {exc}") from None
    # Defaults only: whatever the URL says wins (connect_args would override the URL's query).
    defaults = {"connect_timeout": 10, "application_name": "er-job-history"}
    return sa.create_engine(
        parsed,
        connect_args={k: v for k, v in defaults.items() if k not in parsed.query},
        # One connection per store (the store serialises its use), checked before each use:
        # a database restart must not break a long-lived sensor's store.
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        json_serializer=_DUMPS,
        hide_parameters=True,
    )
