"""The local warehouse: one DuckDB file, reading and writing the local object-store folder."""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import get_dagster_logger

from er_assets import interrupts, processes
from er_assets.config import Domain
from er_assets.errors import ServiceUnavailable
from er_assets.layout import CONTEXT_FILE, CONTEXT_FILE_PATTERN, data_files
from er_assets.resources.object_store import LocalObjectStore
from er_assets.resources.warehouses import queries, registry
from er_assets.resources.warehouses.base import (
    ExtractResult,
    LoadResult,
    OutputCounts,
    Warehouse,
    assemble_profile,
    confidence_figures,
    match_figures,
    named_row,
    non_empty,
    refuse_output,
    schema_problems,
    target_figures,
    transaction,
)
from er_assets.resources.warehouses.queries import quote

if TYPE_CHECKING:
    import duckdb


def literal(path: Path | str) -> str:
    """A file path as a SQL string literal (DuckDB's COPY takes no bound parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


# Nested and binary column types: their text form is not a value Entity Resolution can match.
NOT_TEXT_TYPES = ("STRUCT", "MAP", "UNION", "BLOB", "BIT")


# DuckDB's fragments of the shared queries.
DUCKDB = queries.Dialect(
    ident=quote,
    text="CAST({} AS VARCHAR)",
    full_match="regexp_full_match",
    param="${}",
    ordered_array="LIST(id ORDER BY id)",
    strip="regexp_replace({}, '[[:space:][:punct:]]', '', 'g')",
    hash="CAST(hash({}) >> 1 AS BIGINT)",
)  # an unsigned 64-bit value: halved to fit
# The extract's slice, a view of the connection (`_slice_view`); the staged match rows, temp
# tables: the partition's own records (`staged`), and the whole job output with the context
# records the extract added (`staged_job`), whose ids are in `context_ids`.
SLICE, STAGED = "SELECT * FROM extract_slice", "SELECT * FROM staged"
STAGED_JOB, CONTEXT_IDS = "SELECT * FROM staged_job", "SELECT record_id FROM context_ids"
# The target's own columns, after the match output's.
PARTITION_COLUMN = "partition_key"
# A match output's data files, bound as $files, every value as text.
OUTPUT_CSV = "read_csv($files, header = true, all_varchar = true)"


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
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
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
                    get_dagster_logger().info(
                        f"waiting up to {self.lock_timeout:g}s for the local warehouse {self.path}, in use by {who}"
                    )
                    said = True
                interrupts.check()  # a long wait for the lock is where a lost signal is noticed
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
                context_rows = self._unload_context(con, domain, staging / CONTEXT_FILE)
                profile = self._profile(con, domain)
                _, fingerprint = self._fingerprint(con, domain, start)
                con.execute("COMMIT")
            # Swap the new files in whole: a reader never sees a half-written extract.
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ExtractResult(
            rows=profile["rows"],
            files=store.list_files(dest_uri),
            profile=profile,
            fingerprint=fingerprint,
            context_rows=context_rows,
        )

    def _unload_context(self, con, domain: Domain, path: Path) -> int:
        """Write the context records of the slice's job (`registry.context_sql`) beside its
        records, when the domain has loaded partitions; their number."""
        tables = registry.Tables.of(domain)
        if not (self._table_exists(con, tables.members) and self._table_exists(con, domain.target.table)):
            return 0
        columns = [row[0] for row in con.execute(f"DESCRIBE {quote(domain.target.table)}").fetchall()]
        query = registry.context_sql(DUCKDB, domain, SLICE, domain.target.table, PARTITION_COLUMN, columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE extract_context AS {query}")
        rows = con.execute("SELECT COUNT(*) FROM extract_context").fetchone()[0]
        if rows:
            con.execute(f"COPY extract_context TO {literal(path)} (FORMAT parquet)")
        return int(rows)

    @staticmethod
    def _slice_view(con, domain: Domain, start: dt.date, end: dt.date) -> None:
        columns = ", ".join(quote(c) for c in domain.schema.columns)
        # Dates are formatted from date objects, never from user text: views take no parameters.
        part = quote(domain.source.partition_column)
        where = f"{part} >= DATE '{start.isoformat()}' AND {part} < DATE '{end.isoformat()}'"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW extract_slice AS "
            f"SELECT {columns} FROM {quote(domain.source.table)} WHERE {where}"
        )

    @classmethod
    def _fingerprint(cls, con, domain: Domain, start: dt.date) -> tuple[int, str]:
        """The slice's fingerprint, and the registry's version for its partition
        (`registry.version_sql`: the partition key is the period's first day)."""
        rows, total = con.execute(queries.fingerprint_sql(DUCKDB, domain, SLICE)).fetchone()
        version = (
            con.execute(registry.version_sql(DUCKDB, domain), {"partition": start.isoformat()}).fetchone()[0]
            if cls._table_exists(con, registry.Tables.of(domain).members)
            else 0
        )
        return int(rows), f"{total}/{version}"

    def slice_fingerprint(self, domain: Domain, start: dt.date, end: dt.date) -> tuple[int, str]:
        with self.connect() as con:
            self._slice_view(con, domain, start, end)
            return self._fingerprint(con, domain, start)

    @staticmethod
    def _profile(con, domain: Domain) -> dict:
        """Counts in one pass over the slice, then a few sample ids per problem."""
        params = queries.format_params(domain)
        counts = named_row(con.execute(queries.profile_sql(DUCKDB, domain, SLICE), params))
        samples = con.execute(queries.profile_samples_sql(DUCKDB, domain, SLICE), params).fetchall()
        return assemble_profile(domain, counts, samples)

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        with self.connect() as con:
            found = dict(con.execute(queries.columns_sql(DUCKDB), {"name": domain.source.table}).fetchall())
        return schema_problems(domain, found, NOT_TEXT_TYPES, self.path)

    def load_matches(
        self, domain: Domain, partition_key: str, src_uri: str, accept, extract_uri: str = "", run_id: str = ""
    ) -> LoadResult:
        import duckdb

        # DuckDB reads the output in this process: through local_copy, so it counts as read here.
        with self._store().local_copy(src_uri) as folder:
            files = data_files(folder)
        refuse = functools.partial(refuse_output, src_uri, domain.target.table, partition_key)
        if not files:
            raise refuse("has no data files (missing or emptied)")
        table = quote(domain.target.table)
        uid = quote(domain.schema.unique_id)
        with self.connect() as con:
            try:
                # A connection's own temp table: concurrent loads never see each other's rows.
                # The service's CSV dialect spelled out: a damaged file fails here instead of
                # being sniffed into some other shape.
                con.execute(
                    "CREATE TEMP TABLE staged_job AS SELECT * FROM read_csv("
                    f"[{', '.join(literal(f) for f in files)}], header = true, all_varchar = true, "
                    """delim = ',', quote = '"', escape = '"')"""
                )
            except duckdb.Error as exc:
                raise refuse(f"cannot be read ({str(exc).splitlines()[0]})") from None
            names = {row[0] for row in con.execute("DESCRIBE staged_job").fetchall()}
            missing = [c for c in (domain.schema.unique_id, "MatchID") if c not in names]
            if missing:
                raise refuse(f"lacks the columns {missing}")
            self._context_ids(con, domain, extract_uri)
            # NOT EXISTS, not NOT IN: a row without an id is the partition's, for the checks to see.
            con.execute(
                f"CREATE TEMP TABLE staged AS SELECT * FROM staged_job s WHERE NOT EXISTS "
                f"(SELECT 1 FROM context_ids c WHERE c.record_id = s.{uid})"
            )
            figures = self._figures(con, domain)
            if not figures["rows"]:
                raise refuse("has no rows")
            registry_of = self._registry(con, domain)
            registry_of.create()
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {table} AS SELECT *, CAST(NULL AS VARCHAR) AS partition_key, "
                "CAST(NULL AS TIMESTAMP) AS loaded_at, CAST(NULL AS VARCHAR) AS entity_id FROM staged LIMIT 0"
            )
            # A target loaded before entity ids existed gets the column (`entities rebuild` fills it).
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS entity_id VARCHAR")
            con.execute("BEGIN")
            try:
                con.execute(f"DELETE FROM {table} WHERE partition_key = ?", [partition_key])
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT *, $key AS partition_key, now() AS loaded_at FROM staged",
                    {"key": partition_key},
                )
                identity = registry_of.apply(partition_key, run_id, STAGED_JOB, CONTEXT_IDS)
                if not accept({**figures, "identity": identity}):
                    con.execute("ROLLBACK")
                    return LoadResult(
                        rows=0, table=domain.target.table, figures=figures, replaced=False, identity=identity
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LoadResult(
            rows=figures["rows"], table=domain.target.table, figures=figures, replaced=True, identity=identity
        )

    def _context_ids(self, con, domain: Domain, extract_uri: str) -> None:
        """Temp table `context_ids`: the unique ids of the context records the extract at
        `extract_uri` gave the job (none for an extract without them)."""
        files = context_files(self._store().path(extract_uri)) if extract_uri else []
        con.execute(f"CREATE OR REPLACE TEMP TABLE context_ids AS {context_ids_sql(files, domain.schema.unique_id)}")

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str, extract_uri: str = "") -> dict:
        # Locally the folder is the data's home: DuckDB reads it in this process, in memory,
        # without the warehouse file (another stage may be writing it).
        store = self._store()
        context = context_files(store.path(extract_uri)) if extract_uri else []
        with store.local_copy(output_uri) as output, store.local_copy(error_uri) as errors:
            confidence = (
                confidence_summary(output, domain.dq.min_confidence.threshold, context, domain.schema.unique_id)
                if domain.ml_matching
                else None
            )
            return match_figures(
                match_counts(output, context, domain.schema.unique_id), error_records(errors), confidence
            )

    def _registry(self, con, domain: Domain) -> registry.Registry:
        return registry.Registry(DUCKDB, domain, con.execute, domain.target.table, PARTITION_COLUMN)

    def show_entity(self, domain: Domain, ident: str) -> dict:
        with self.connect() as con:
            if not self._table_exists(con, domain.target.table):
                return {}
            return self._registry(con, domain).show(ident)

    def rebuild_entities(self, domain: Domain, run_id: str) -> dict:
        with self.connect() as con:
            if not self._table_exists(con, domain.target.table):
                return registry.nothing_rebuilt()
            registry_of = self._registry(con, domain)
            registry_of.create()
            con.execute(f"ALTER TABLE {quote(domain.target.table)} ADD COLUMN IF NOT EXISTS entity_id VARCHAR")
            with transaction(con.execute):
                return registry_of.rebuild(run_id)

    @staticmethod
    def _table_exists(con, table: str) -> bool:
        return bool(con.execute(queries.table_exists_sql(DUCKDB), {"name": table}).fetchone()[0])

    @staticmethod
    def _figures(con, domain: Domain) -> dict:
        """`target_figures` of the staged rows, with the non-empty values of their schema columns."""
        counts = con.execute(queries.figures_sql(DUCKDB, domain, STAGED)).fetchone()
        samples = con.execute(queries.figures_samples_sql(DUCKDB, domain, STAGED)).fetchall()
        # A schema column the rows lack has no value left at all: it counts 0, and no_value_loss says so.
        present = {row[0] for row in con.execute(f"DESCRIBE {STAGED}").fetchall()}
        columns = [c for c in domain.schema.columns if c in present]
        found = named_row(con.execute(queries.non_empty_sql(DUCKDB, domain, STAGED, columns))) if columns else {}
        return {**target_figures(counts, samples), "non_empty": non_empty(domain, found)}

    def check_ready(self, domain: Domain) -> list[str]:
        with self.connect() as con:
            if not self._table_exists(con, domain.source.table):
                return [
                    f"source table {domain.source.table} does not exist in {self.path} (`make demo` seeds sample data)"
                ]
        return []


@contextmanager
def _in_memory() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB of this process alone, without the warehouse file (another stage may hold it)."""
    import duckdb

    con = duckdb.connect()
    try:
        yield con
    finally:
        con.close()


def context_files(extract_folder: Path) -> list[str]:
    """The context files of a local extract (layout.CONTEXT_FILE_PATTERN), in name order."""
    if not extract_folder.is_dir():
        return []
    return sorted(str(f) for f in extract_folder.rglob("*") if re.fullmatch(CONTEXT_FILE_PATTERN, f.name))


def context_ids_sql(files: list[str], unique_id: str) -> str:
    """The unique ids (as `record_id`) of the context records in `files`; none without files."""
    if not files:
        return "SELECT CAST(NULL AS VARCHAR) AS record_id WHERE FALSE"
    return (
        f"SELECT CAST({quote(unique_id)} AS VARCHAR) AS record_id "
        f"FROM read_parquet([{', '.join(literal(f) for f in files)}])"
    )


def match_counts(folder: Path, context: Sequence[str] = (), unique_id: str = "") -> OutputCounts:
    """The counts of the data files in `folder` (a job's success/), the context records in the
    files `context` not counted."""
    files = data_files(folder)
    if not files:
        return OutputCounts()
    own = f"id NOT IN ({context_ids_sql(list(context), unique_id)})" if context else "TRUE"
    with _in_memory() as con:
        records = f'SELECT "MatchID" AS m, "RecordId" AS id FROM {OUTPUT_CSV}'
        return OutputCounts.read(named_row(con.execute(queries.output_counts_sql(records, own), {"files": files})))


def error_records(folder: Path) -> int:
    """Rows the service rejected (a job's error/ folder)."""
    files = data_files(folder)
    if not files:
        return 0
    with _in_memory() as con:
        row = con.execute(f"SELECT COUNT(*) FROM {OUTPUT_CSV}", {"files": files}).fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return int(row[0])


def confidence_summary(folder: Path, threshold: float, context: Sequence[str] = (), unique_id: str = "") -> dict:
    """`confidence_figures` of the output in `folder` (an ML_MATCHING job's success/), the
    context records in the files `context` not counted."""
    files = data_files(folder)
    if not files:
        return confidence_figures(None)
    with _in_memory() as con:
        header = [
            row[0]
            for row in con.execute(
                f"SELECT column_name FROM (DESCRIBE SELECT * FROM {OUTPUT_CSV})", {"files": files}
            ).fetchall()
        ]
        if "ConfidenceLevel" not in header:
            return confidence_figures(header)
        records = (
            f'SELECT "RecordId" AS id, "MatchID" AS m, TRY_CAST("ConfidenceLevel" AS DOUBLE) AS c FROM {OUTPUT_CSV}'
        )
        own = f"id NOT IN ({context_ids_sql(list(context), unique_id)})" if context else "TRUE"
        row = con.execute(
            queries.output_confidence_sql(DUCKDB, records, own), {"files": files, "threshold": threshold}
        ).fetchone()
    return confidence_figures(header, row)
