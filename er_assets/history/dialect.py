"""The two databases the history lives in, and everything in which they differ.

SQL elsewhere is written once, with `:name` parameters and a few `{placeholders}` for the
types and expressions below; a dialect turns it into what its driver runs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from er_assets import exit_codes
from er_assets.redact import Redacting

UTC = dt.timezone.utc


class HistoryError(Redacting):
    """The history store cannot be used as configured; the message never shows a password."""

    exit_code = exit_codes.SERVICE_UNAVAILABLE


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: history times must be timezone-aware")
    return value.astimezone(UTC)


class Dialect:
    name: str
    types: ClassVar[dict[str, str]]  # what {id}, {json} and {timestamp} mean in schema.py's DDL
    TABLE_EXISTS: ClassVar[str]  # one row, `n`: 1 when the table `:name` exists, else 0

    def connect(self) -> Any: ...

    def transaction(self, conn: Any) -> Any: ...

    def is_closed(self, conn: Any) -> bool:
        raise NotImplementedError

    def ddl(self, text: str) -> str:
        """A schema statement with this dialect's types; run without parameters."""
        return text.format(**self.types)

    def sql(self, text: str) -> str:
        """A `:name`-parameterised statement in this driver's parameter style."""
        return text

    def day(self, column: str) -> str:
        """SQL for the UTC calendar day of a timestamp column."""
        raise NotImplementedError

    def seconds_between(self, start: str, end: str) -> str:
        raise NotImplementedError

    def round(self, expression: str, digits: int) -> str:
        return f"ROUND({expression}, {digits})"

    def now(self) -> str:
        return "CURRENT_TIMESTAMP"

    def timestamp(self, value: dt.datetime) -> Any:
        return _utc(value)

    def date(self, value: dt.date) -> Any:
        return value

    def json(self, value: Any) -> Any:
        raise NotImplementedError

    def read_value(self, column: str, value: Any) -> Any:
        """Driver value -> Python value, so both dialects give callers the same types."""
        return value


class SQLite(Dialect):
    """The embedded default. Times are ISO-8601 UTC text, which sorts chronologically and
    which SQLite's own date functions (used by the views) understand."""

    name = "sqlite"
    types: ClassVar[dict[str, str]] = {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "json": "TEXT CHECK (json_valid(metadata))",  # only the metadata column is JSON
        "timestamp": "TIMESTAMP",
    }

    TABLE_EXISTS = "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = :name"

    def __init__(self, path: str):
        self.path = path

    def connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (see transaction), so DDL and
        # DML commit together; check_same_thread=False: the store serialises access itself.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            # WAL lets the report and Grafana read while a run writes; in WAL mode
            # synchronous=NORMAL cannot corrupt the file, it may only lose the last
            # commits on power loss, and it spares an fsync per history event.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
        # IMMEDIATE takes the write lock up front: two processes that both read then write
        # would otherwise deadlock on the lock upgrade and one would fail with SQLITE_BUSY.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn.cursor()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def is_closed(self, conn: sqlite3.Connection) -> bool:
        return False  # a local file does not go away under an open connection

    def day(self, column: str) -> str:
        return f"date({column})"

    def seconds_between(self, start: str, end: str) -> str:
        return f"((julianday({end}) - julianday({start})) * 86400.0)"

    def timestamp(self, value: dt.datetime) -> str:
        return _utc(value).isoformat(timespec="microseconds")

    def date(self, value: dt.date) -> str:
        return value.isoformat()

    def json(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    def read_value(self, column: str, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        if column in DATE_COLUMNS:
            return dt.date.fromisoformat(value)
        if column in TIME_COLUMNS:
            parsed = dt.datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if column in JSON_COLUMNS:
            return json.loads(value)
        return value


class Postgres(Dialect):
    """Production: psycopg 3, TIMESTAMPTZ and JSONB."""

    name = "postgresql"
    types: ClassVar[dict[str, str]] = {
        "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "json": "JSONB",
        "timestamp": "TIMESTAMPTZ",
    }

    # current_schema(): the first schema of the search_path the URL may set.
    TABLE_EXISTS = (
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = :name"
    )

    def __init__(self, conninfo: str):
        self.conninfo = conninfo

    def connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        # Defaults only: whatever the URL says wins.
        # Any: psycopg.connect types each keyword, conninfo_to_dict only says str | int | None.
        params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        params.setdefault("connect_timeout", 10)
        params.setdefault("application_name", "er-job-history")
        try:
            return psycopg.connect(autocommit=True, row_factory=dict_row, **params)
        except psycopg.OperationalError as exc:
            # libpq names host and user, which the operator needs; HistoryError masks a
            # password echoed back from the URL.
            raise HistoryError(f"cannot connect to the job history database: {exc}".strip()) from None

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def is_closed(self, conn: Any) -> bool:
        return conn.closed or conn.broken

    def sql(self, text: str) -> str:
        return _pyformat(text)

    def day(self, column: str) -> str:
        return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"

    def seconds_between(self, start: str, end: str) -> str:
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"

    def round(self, expression: str, digits: int) -> str:
        # Postgres rounds to digits only NUMERIC, not DOUBLE PRECISION.
        return f"ROUND(CAST({expression} AS NUMERIC), {digits})"

    def json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=lambda v: json.dumps(v, sort_keys=True, default=str))

    def read_value(self, column: str, value: Any) -> Any:
        if isinstance(value, Decimal):  # NUMERIC aggregates; callers want plain numbers
            return float(value)
        if isinstance(value, dt.datetime):
            return _utc(value)
        return value


# Columns (of the table and of the views) whose driver values need converting on read.
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
JSON_COLUMNS = frozenset({"metadata"})


@lru_cache(maxsize=256)
def _pyformat(text: str) -> str:
    """`:name` -> `%(name)s` for psycopg, leaving `::type` casts alone; a literal `%` is
    doubled because psycopg would read it as a placeholder."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", text.replace("%", "%%"))


def dialect_for(url: str) -> Dialect:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite://` (in memory),
    or any libpq URL: `postgresql://user@host:5432/db?sslmode=require`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc:
            raise HistoryError(
                f"sqlite URL takes no host: use sqlite:///relative.db or sqlite:////absolute.db, not {url!r}"
            )
        path = unquote(parts.path[1:]) if parts.path else ":memory:"
        return SQLite(path or ":memory:")
    if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
        return Postgres(url.replace("postgresql+psycopg://", "postgresql://", 1))
    raise HistoryError(f"unsupported job history URL scheme {scheme!r}: expected sqlite:/// or postgresql://")
