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
from er_assets.warehouses.base import MAX_UNIQUE_ID_LENGTH, ExtractResult, LoadResult, Warehouse


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(path: Path | str) -> str:
    """A file path as a SQL string literal (DuckDB's COPY takes no bound parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


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
        uid = quote(domain.schema.unique_id)
        required = domain.dq.required_fields
        nulls = ", ".join(
            f"count(*) FILTER (WHERE {quote(f)} IS NULL OR trim(CAST({quote(f)} AS VARCHAR)) = '')" for f in required
        )
        row = con.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE {uid} IS NULL OR trim(CAST({uid} AS VARCHAR)) = ''),
                   count(*) - count(DISTINCT {uid}),
                   count(*) FILTER (WHERE length(CAST({uid} AS VARCHAR)) > {MAX_UNIQUE_ID_LENGTH})
                   {', ' + nulls if nulls else ''}
            FROM extract_slice
            """
        ).fetchone()
        rows, empty_ids, duplicate_ids, long_ids, *null_counts = row
        return {
            "rows": rows,
            "empty_ids": empty_ids,
            "duplicate_ids": duplicate_ids,
            "long_ids": long_ids,
            "null_counts": dict(zip(required, null_counts)),
        }

    def load_matches(self, domain: Domain, partition_key: str, src_uri: str) -> LoadResult:
        folder = self._store().path(src_uri)
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        table = quote(domain.target.table)
        with self.connect() as con:
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

    @staticmethod
    def _table_exists(con, table: str) -> bool:
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0])

    def target_stats(self, domain: Domain, partition_key: str) -> dict:
        with self.connect() as con:
            if not self._table_exists(con, domain.target.table):
                return {"rows": 0, "duplicate_ids": 0}
            uid = quote(domain.schema.unique_id)
            rows, dupes = con.execute(
                f"SELECT count(*), count(*) - count(DISTINCT {uid}) FROM {quote(domain.target.table)} WHERE partition_key = ?",
                [partition_key],
            ).fetchone()
        return {"rows": rows, "duplicate_ids": dupes}

    def check_ready(self, domain: Domain) -> list[str]:
        with self.connect() as con:
            if not self._table_exists(con, domain.source.table):
                return [f"source table {domain.source.table} does not exist in {self.path} (run `make seed`)"]
        return []
