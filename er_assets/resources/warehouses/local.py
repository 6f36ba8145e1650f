"""The local warehouse: one DuckDB file, reading and writing the local object-store folder."""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import get_dagster_logger

from er_assets import processes
from er_assets.config import Domain
from er_assets.errors import ServiceUnavailable
from er_assets.resources.match_output import data_files
from er_assets.resources.object_store import LocalObjectStore
from er_assets.resources.warehouses.base import (
    MAX_UNIQUE_ID_LENGTH,
    SAMPLE_IDS,
    blank_sql as _empty,
    non_empty_counts,
    ExtractResult,
    LoadResult,
    Warehouse,
    assemble_profile,
    refuse_output,
    match_figures,
    sample_labels,
    target_figures,
)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(path: Path | str) -> str:
    """A file path as a SQL string literal (DuckDB's COPY takes no bound parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


# Nested and binary column types: their text form is not a value Entity Resolution can match.
NOT_TEXT_TYPES = ("STRUCT", "MAP", "UNION", "BLOB", "BIT")


def _text(column: str) -> str:
    return f"CAST({quote(column)} AS VARCHAR)"


def _problems(domain: Domain, uid: str) -> dict[str, str]:
    """The condition a record meets when it has each sampled problem (see `sample_labels`).

    Format patterns are bound as $fmt<i>, in `domain.format_fields` order."""
    problems = {"long_ids": f"length({uid}) > {MAX_UNIQUE_ID_LENGTH}"}
    problems.update({f"null:{f}": _empty(_text(f)) for f in domain.dq.required_fields})
    problems.update({
        f"format:{name}": f"NOT {_empty(_text(name))} AND NOT regexp_full_match(trim({_text(name)}), $fmt{i})"
        for i, (name, _, _) in enumerate(domain.format_fields)
    })
    return problems


def _remove_dead_staging(partition_folder: Path) -> None:
    """Remove the staging folders (`.run=<id>.<pid>.<hex>`) of extracts of this partition whose
    process is gone (killed mid-extract); a live one belongs to a concurrent extract."""
    for folder in partition_folder.glob(".run=*"):
        pid = folder.name.rsplit(".", 2)[-2] if folder.name.count(".") >= 3 else ""
        if not (pid.isdigit() and processes.pid_taken(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


class DuckDBWarehouse(Warehouse):
    """`path` is the DuckDB file; `objects_root` the local object store's folder.

    DuckDB lets one process at a time open the file (another fails "Could not set lock on file"), and stages of
    different domains, or the runs of a backfill, run at once: each operation holds the file
    only for its own statements and waits up to `lock_timeout` seconds for another holder."""

    path: str
    objects_root: str
    lock_timeout: float = 600.0

    @contextmanager
    def connect(self) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        try:
            yield con
        finally:
            con.close()

    def _open(self):
        import duckdb

        deadline = time.monotonic() + self.lock_timeout
        delay, said = 0.05, False
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.IOException as exc:
                if "Could not set lock" not in str(exc):
                    raise
                holder = re.search(r"Conflicting lock is held in (.*?\(PID \d+\))", str(exc))
                who = holder.group(1) if holder else "another process"
                if time.monotonic() + delay > deadline:
                    raise ServiceUnavailable(
                        f"the local warehouse {self.path} stayed locked by {who} for more than "
                        f"{self.lock_timeout:g}s; is a stage or a DuckDB session stuck?"
                    ) from None
                if not said:
                    get_dagster_logger().info(f"waiting up to {self.lock_timeout:g}s for the local warehouse "
                                              f"{self.path}, in use by {who}")
                    said = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _store(self) -> LocalObjectStore:
        return LocalObjectStore(root=self.objects_root)

    def unload_extract(self, domain: Domain, start: dt.date, end: dt.date, dest_uri: str) -> ExtractResult:
        store = self._store()
        final = store.path(dest_uri)
        _remove_dead_staging(final.parent)
        # Hidden, named after this process: a killed extract's folder is found and removed.
        staging = final.parent / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            with self.connect() as con:
                self._slice_view(con, domain, start, end)
                # One transaction: the files, the profile and the fingerprint see the same rows.
                con.execute("BEGIN")
                con.execute(f"COPY extract_slice TO {literal(staging / 'data_0.parquet')} (FORMAT parquet)")
                profile = self._profile(con, domain)
                _, fingerprint = self._fingerprint(con, domain)
                con.execute("COMMIT")
            # Swap the new files in whole: a reader never sees a half-written extract.
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ExtractResult(rows=profile["rows"], files=store.list_files(dest_uri), profile=profile,
                             fingerprint=fingerprint)

    @staticmethod
    def _slice_view(con, domain: Domain, start: dt.date, end: dt.date) -> None:
        columns = ", ".join(quote(c) for c in domain.schema.columns)
        # Dates are formatted from date objects, never from user text: views take no parameters.
        part = quote(domain.source.partition_column)
        where = f"{part} >= DATE '{start.isoformat()}' AND {part} < DATE '{end.isoformat()}'"
        con.execute(f"CREATE OR REPLACE TEMP VIEW extract_slice AS "
                    f"SELECT {columns} FROM {quote(domain.source.table)} WHERE {where}")

    @staticmethod
    def _fingerprint(con, domain: Domain) -> tuple[int, str]:
        texts = ", ".join(_text(c) for c in domain.schema.columns)
        rows, total = con.execute(f"SELECT count(*), coalesce(sum(hash({texts})), 0) FROM extract_slice").fetchone()
        return int(rows), str(total)

    def slice_fingerprint(self, domain: Domain, start: dt.date, end: dt.date) -> tuple[int, str]:
        with self.connect() as con:
            self._slice_view(con, domain, start, end)
            return self._fingerprint(con, domain)

    def _profile(self, con, domain: Domain) -> dict:
        """Counts in one pass over the slice, then a few sample ids per problem."""
        uid = _text(domain.schema.unique_id)
        problems = _problems(domain, uid)
        params = {f"fmt{i}": pattern for i, (_, _, pattern) in enumerate(domain.format_fields)}
        counts = [f"count_if({problems['long_ids']})"]
        counts += [f"count_if({problems[f'null:{f}']})" for f in domain.dq.required_fields]
        for name, _, _ in domain.format_fields:
            counts += [f"count_if(NOT {_empty(_text(name))})", f"count_if({problems[f'format:{name}']})"]
        counts += non_empty_counts(domain, _text)
        row = con.execute(
            f"SELECT count(*), count_if({_empty(uid)}), count(*) - count(DISTINCT {uid}), {', '.join(counts)} "
            "FROM extract_slice",
            params,
        ).fetchone()
        branches = [
            f"SELECT * FROM (SELECT 'duplicate_ids' AS label, {uid} AS id FROM extract_slice WHERE {uid} IS NOT NULL "
            f"GROUP BY {uid} HAVING count(*) > 1 ORDER BY 2 LIMIT {SAMPLE_IDS})"
        ] + [
            f"SELECT * FROM (SELECT '{label}' AS label, {uid} AS id FROM extract_slice "
            f"WHERE ({problems[label]}) AND NOT ({_empty(uid)}) ORDER BY 2 LIMIT {SAMPLE_IDS})"
            for label in sample_labels(domain) if label != "duplicate_ids"
        ]
        samples = con.execute(" UNION ALL ".join(branches), params).fetchall()
        return assemble_profile(domain, row, samples)

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        with self.connect() as con:
            found = dict(con.execute(
                "SELECT lower(column_name), data_type FROM information_schema.columns "
                "WHERE table_name = ? AND table_schema = current_schema()",
                [domain.source.table],
            ).fetchall())
        if not found:
            return {domain.source.table: f"table not found in {self.path}"}
        problems = {c: "missing" for c in [*domain.schema.columns, domain.source.partition_column]
                    if c.lower() not in found}
        for column in domain.schema.columns:
            kind = found.get(column.lower(), "")
            if kind.startswith(NOT_TEXT_TYPES) or "[" in kind:  # `[` marks LIST and ARRAY types
                problems[column] = f"type {kind} cannot be extracted as text"
        date_kind = found.get(domain.source.partition_column.lower())
        if date_kind and not date_kind.startswith(("DATE", "TIMESTAMP")):
            problems[domain.source.partition_column] = f"type {date_kind} is not a DATE or TIMESTAMP"
        return problems

    def load_matches(self, domain: Domain, partition_key: str, src_uri: str, accept) -> LoadResult:
        import duckdb

        # DuckDB reads the output in this process: through local_copy, so it counts as read here.
        with self._store().local_copy(src_uri) as folder:
            files = data_files(folder)
        refuse = functools.partial(refuse_output, src_uri, domain.target.table, partition_key)
        if not files:
            raise refuse("has no data files (missing or emptied)")
        table = quote(domain.target.table)
        with self.connect() as con:
            try:
                # A connection's own temp table: concurrent loads never see each other's rows.
                # The service's CSV dialect spelled out: a damaged file fails here instead of
                # being sniffed into some other shape.
                con.execute("CREATE TEMP TABLE staged AS SELECT * FROM read_csv("
                            f"[{', '.join(literal(f) for f in files)}], header = true, all_varchar = true, "
                            """delim = ',', quote = '"', escape = '"')""")
            except duckdb.Error as exc:
                raise refuse(f"cannot be read ({str(exc).splitlines()[0]})") from None
            names = {row[0] for row in con.execute("DESCRIBE staged").fetchall()}
            missing = [c for c in (domain.schema.unique_id, "MatchID") if c not in names]
            if missing:
                raise refuse(f"lacks the columns {missing}")
            figures = self._figures(con, domain, "staged", {})
            if not figures["rows"]:
                raise refuse("has no rows")
            if not accept(figures):
                return LoadResult(rows=0, table=domain.target.table, figures=figures, replaced=False)
            con.execute("BEGIN")
            try:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} AS SELECT *, CAST(NULL AS VARCHAR) AS partition_key, "
                    "CAST(NULL AS TIMESTAMP) AS loaded_at FROM staged LIMIT 0"
                )
                con.execute(f"DELETE FROM {table} WHERE partition_key = ?", [partition_key])
                con.execute(f"INSERT INTO {table} BY NAME SELECT *, $key AS partition_key, now() AS loaded_at FROM staged",
                            {"key": partition_key})
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LoadResult(rows=figures["rows"], table=domain.target.table, figures=figures, replaced=True)

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str) -> dict:
        from er_assets.resources.match_output import confidence_summary, error_records, match_counts

        # Locally the folder is the data's home: DuckDB reads it in this process, in memory,
        # without the warehouse file (another stage may be writing it).
        store = self._store()
        with store.local_copy(output_uri) as output, store.local_copy(error_uri) as errors:
            confidence = (confidence_summary(output, domain.dq.min_confidence.threshold)
                          if domain.ml_matching else None)
            return match_figures(*match_counts(output), error_records(errors), confidence)

    @staticmethod
    def _table_exists(con, table: str) -> bool:
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0])

    @staticmethod
    def _figures(con, domain: Domain, relation: str, params: dict) -> dict:
        """`target_figures` of the rows of `relation` (a table or a parenthesised query)."""
        uid = quote(domain.schema.unique_id)
        no_match_id = _empty('"MatchID"')
        counts = con.execute(
            # A blank MatchID is none, as the matched stage counts them (match_output.match_counts).
            f"SELECT count(*), count(*) - count(DISTINCT {uid}), count_if({no_match_id}), "
            f"count(DISTINCT CASE WHEN NOT {no_match_id} THEN \"MatchID\" END) FROM {relation}", params,
        ).fetchone()
        samples = con.execute(
            f"SELECT * FROM (SELECT 'duplicate_ids', {uid} FROM {relation} GROUP BY {uid} HAVING count(*) > 1 "
            f"ORDER BY 2 LIMIT {SAMPLE_IDS}) UNION ALL SELECT * FROM (SELECT 'missing_match_ids', {uid} "
            f"FROM {relation} WHERE {no_match_id} ORDER BY 2 LIMIT {SAMPLE_IDS})", params,
        ).fetchall()
        # A schema column the rows lack has no value left at all: it counts 0, and no_value_loss says so.
        present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()}
        columns = [c for c in domain.schema.columns if c in present]
        counts_sql = non_empty_counts(domain, _text, columns)
        found = con.execute(f"SELECT {', '.join(counts_sql)} FROM {relation}", params).fetchone() if columns else ()
        # Over no rows COUNT_IF is NULL, not 0.
        non_empty = {**dict.fromkeys(domain.schema.columns, 0), **{c: int(n or 0) for c, n in zip(columns, found)}}
        return {**target_figures(counts, samples), "non_empty": non_empty}

    def check_ready(self, domain: Domain) -> list[str]:
        with self.connect() as con:
            if not self._table_exists(con, domain.source.table):
                return [f"source table {domain.source.table} does not exist in {self.path} (`make demo` seeds sample data)"]
        return []
