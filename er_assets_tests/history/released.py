"""Job history databases as the releases before Alembic left them, built from those releases'
own DDL (released/<database>.sql, frozen), and what a schema looks like to compare two."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb

RELEASED = Path(__file__).with_name("released")
APPLIED_AT = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def engine(url: str) -> sa.Engine:
    """A plain engine, without anything HistoryStore sets up."""
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def sections(dialect: str) -> list[tuple[int, str, list[str]]]:
    """(version, description, statements) in order; version 0 is the bootstrap."""
    found = []
    text = (RELEASED / f"{dialect}.sql").read_text()
    for head, body in re.findall(r"^-- (bootstrap|version \d+: [^\n]*)\n(.*?)(?=^-- |\Z)", text, re.M | re.S):
        version, _, description = head.removeprefix("version ").partition(": ")
        statements = [s.strip() for s in body.split(";\n") if s.strip()]
        found.append((0 if head == "bootstrap" else int(version), description, statements))
    return found


def stored(dialect: str, value: Any) -> Any:
    """A value in the form the releases wrote it: on SQLite, ISO-8601 text and JSON text."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if dialect == "sqlite" else Jsonb(value)
    if isinstance(value, (dt.date, dt.datetime)) and dialect == "sqlite":
        return value.isoformat(timespec="microseconds") if isinstance(value, dt.datetime) else value.isoformat()
    return value


def build(url: str, version: int) -> sa.Engine:
    """A database at `version` as the release that wrote it created it: its DDL, and its
    er_schema_version rows."""
    db = engine(url)
    with db.begin() as conn:
        for number, description, statements in sections(db.dialect.name):
            if number > version:
                break
            for statement in statements:
                conn.exec_driver_sql(statement)
            if number:
                conn.execute(
                    sa.text("INSERT INTO er_schema_version (version, description, applied_at) VALUES (:v, :d, :t)"),
                    {"v": number, "d": description, "t": stored(db.dialect.name, APPLIED_AT)},
                )
    return db


def insert(db: sa.Engine, table: str, **values: Any) -> Any:
    """One row, its values stored as the releases stored them; returns the row's first column."""
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    with db.begin() as conn:
        return conn.execute(
            sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING *"),
            {name: stored(db.dialect.name, value) for name, value in values.items()},
        ).first()[0]


def shape(url: str) -> dict[str, Any]:
    """What the schema holds, as SQLAlchemy reflects it: every table's columns, keys, indexes
    and checks, and every view's definition. A primary key column counts as NOT NULL: the
    releases' SQLite DDL did not say so (an INTEGER one is never NULL there anyway, a TEXT
    one may be, which the code never writes), SQLAlchemy's says so, PostgreSQL implies it."""
    with engine(url).connect() as conn:
        seen = sa.inspect(conn)
        tables = sorted(set(seen.get_table_names()) - {"alembic_version", "sqlite_sequence"})
        keys = {table: seen.get_pk_constraint(table)["constrained_columns"] for table in tables}
        return {
            "tables": {
                table: {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"] and c["name"] not in keys[table], c["default"])
                        + (c.get("identity"),)
                        for c in seen.get_columns(table)
                    ],
                    "primary_key": keys[table],
                    "unique": sorted((u["name"], u["column_names"]) for u in seen.get_unique_constraints(table)),
                    "indexes": sorted((i["name"], i["column_names"], i["unique"]) for i in seen.get_indexes(table)),
                    "checks": sorted(c["sqltext"] for c in seen.get_check_constraints(table)),
                }
                for table in tables
            },
            "views": {view: seen.get_view_definition(view) for view in sorted(seen.get_view_names())},
        }
