"""The local warehouse: one DuckDB file, reading and writing the local object-store folder."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from er_assets.config import Domain
from er_assets.object_store import LocalObjectStore
from er_assets.warehouses.base import (
    MAX_UNIQUE_ID_LENGTH,
    SAMPLE_IDS,
    ExtractResult,
    LoadResult,
    Warehouse,
    assemble_profile,
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


def _empty(text: str) -> str:
    return f"({text} IS NULL OR trim({text}) = '')"


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


class DuckDBWarehouse(Warehouse):
    """`path` is the DuckDB file; `objects_root` the local object store's folder."""

    path: str
    objects_root: str

    @contextmanager
    def connect(self) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Short-lived connections: the CLI and `dagster dev` share the file, and DuckDB
        # allows one writing process at a time.
        con = duckdb.connect(self.path)
        try:
            yield con
        finally:
            con.close()

    def _store(self) -> LocalObjectStore:
        return LocalObjectStore(root=self.objects_root)

    def unload_extract(self, domain: Domain, start: dt.date, end: dt.date, dest_uri: str) -> ExtractResult:
        store = self._store()
        final = store.path(dest_uri)
        staging = final.parent / f".{final.name}.{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        columns = ", ".join(quote(c) for c in domain.schema.columns)
        # Dates are formatted from date objects, never from user text: views take no parameters.
        part = quote(domain.source.partition_column)
        where = f"{part} >= DATE '{start.isoformat()}' AND {part} < DATE '{end.isoformat()}'"
        select = f"SELECT {columns} FROM {quote(domain.source.table)} WHERE {where}"
        try:
            with self.connect() as con:
                con.execute(f"CREATE OR REPLACE TEMP VIEW extract_slice AS {select}")
                con.execute(f"COPY extract_slice TO {literal(staging / 'data_0.parquet')} (FORMAT parquet)")
                profile = self._profile(con, domain)
            # Swap the new files in whole: a reader never sees a half-written extract.
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ExtractResult(rows=profile["rows"], files=store.list_files(dest_uri), profile=profile)

    def _profile(self, con, domain: Domain) -> dict:
        """Counts in one pass over the slice, then a few sample ids per problem."""
        uid = _text(domain.schema.unique_id)
        problems = _problems(domain, uid)
        params = {f"fmt{i}": pattern for i, (_, _, pattern) in enumerate(domain.format_fields)}
        counts = [f"count_if({problems['long_ids']})"]
        counts += [f"count_if({problems[f'null:{f}']})" for f in domain.dq.required_fields]
        for name, _, _ in domain.format_fields:
            counts += [f"count_if(NOT {_empty(_text(name))})", f"count_if({problems[f'format:{name}']})"]
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

    def load_matches(self, domain: Domain, partition_key: str, src_uri: str) -> LoadResult:
        table = quote(domain.target.table)
        # DuckDB reads the output in this process: through local_copy, so it counts as read here.
        with self._store().local_copy(src_uri) as folder, self.connect() as con:
            files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
            con.execute("BEGIN")
            try:
                if files:
                    source = f"read_csv({literal(folder / '*.csv')}, header = true, all_varchar = true)"
                    con.execute(
                        f"CREATE TABLE IF NOT EXISTS {table} AS "
                        f"SELECT *, CAST(NULL AS VARCHAR) AS partition_key, CAST(NULL AS TIMESTAMP) AS loaded_at "
                        f"FROM {source} LIMIT 0"
                    )
                    con.execute(f"DELETE FROM {table} WHERE partition_key = ?", [partition_key])
                    con.execute(
                        f"INSERT INTO {table} BY NAME SELECT *, $key AS partition_key, now() AS loaded_at FROM {source}",
                        {"key": partition_key},
                    )
                elif self._table_exists(con, domain.target.table):
                    con.execute(f"DELETE FROM {table} WHERE partition_key = ?", [partition_key])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LoadResult(rows=self.target_stats(domain, partition_key)["rows"], table=domain.target.table)

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str) -> dict:
        from er_assets.match_output import error_records, match_counts

        # Locally the folder is the data's home: DuckDB reads it in this process, in memory,
        # without the warehouse file (another stage may be writing it).
        store = self._store()
        with store.local_copy(output_uri) as output, store.local_copy(error_uri) as errors:
            return match_figures(*match_counts(output), error_records(errors))

    @staticmethod
    def _table_exists(con, table: str) -> bool:
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0])

    def target_stats(self, domain: Domain, partition_key: str) -> dict:
        with self.connect() as con:
            if not self._table_exists(con, domain.target.table):
                return target_figures((0, 0, 0), ())
            uid, table = quote(domain.schema.unique_id), quote(domain.target.table)
            rows = f"(SELECT * FROM {table} WHERE partition_key = $key)"
            no_match_id = _empty('"MatchID"')
            counts = con.execute(
                f"SELECT count(*), count(*) - count(DISTINCT {uid}), count_if({no_match_id}) FROM {rows}",
                {"key": partition_key},
            ).fetchone()
            samples = con.execute(
                f"SELECT * FROM (SELECT 'duplicate_ids', {uid} FROM {rows} GROUP BY {uid} HAVING count(*) > 1 "
                f"ORDER BY 2 LIMIT {SAMPLE_IDS}) UNION ALL SELECT * FROM (SELECT 'missing_match_ids', {uid} "
                f"FROM {rows} WHERE {no_match_id} ORDER BY 2 LIMIT {SAMPLE_IDS})",
                {"key": partition_key},
            ).fetchall()
        return target_figures(counts, samples)

    def check_ready(self, domain: Domain) -> list[str]:
        with self.connect() as con:
            if not self._table_exists(con, domain.source.table):
                return [f"source table {domain.source.table} does not exist in {self.path} (`make demo` seeds sample data)"]
        return []
