"""The production warehouse: Snowflake, moving data through an external stage on the bucket.

Extract unloads the partition's slice with `COPY INTO @stage/...` straight to S3; load copies
the match output CSV from the stage into the target table. No rows pass through the Dagster
worker. The statements are built by the small functions at the top of this module (the
measuring queries by `queries`, rendered with Snowflake's fragments), so tests can run them
through fakesnow or parse them with sqlglot, and a reviewer can read them in one place.

Identifiers come from the configuration, the environment and the match output's header:
each is checked against a plain-identifier pattern and emitted quoted in upper case, so it
resolves like an unquoted Snowflake identifier (case-insensitive) and can never end the
statement. Values (dates, partition keys) are always bound parameters.

`dagster_snowflake` (and with it Snowpark) takes seconds to import, so it is imported only
when a connection is opened, never when the definitions load.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from pydantic import Field

from er_assets import layout
from er_assets.config import IDENTIFIER, Domain
from er_assets.resources.object_store import ObjectStore
from er_assets.resources.warehouses import queries
from er_assets.resources.warehouses.base import (
    ExtractResult,
    LoadResult,
    Warehouse,
    assemble_profile,
    confidence_figures,
    match_figures,
    refuse_output,
    schema_problems,
    target_figures,
)

# Stage paths appear unquoted after `@stage/`: letters, digits and the few punctuation marks
# our layout uses (`partition=2024-01-01`, workflow names with dashes). No quotes, spaces, `;`.
STAGE_PATH = re.compile(r"^[A-Za-z0-9_./=-]*$")
PARTITION_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Columns the load adds to every match output row.
PARTITION_COLUMN = "PARTITION_KEY"
LOADED_AT_COLUMN = "LOADED_AT"
# Parquet parts of up to 256 MB: few enough objects for the matching job to list quickly,
# small enough that Snowflake still writes them in parallel (its default is 16 MB).
DEFAULT_MAX_FILE_SIZE = 256 * 1024 * 1024
CSV_FORMAT = "TYPE = CSV SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"'"


class UnsafeIdentifier(ValueError):
    """A name that is not a plain SQL identifier; it is never put into a statement."""


def ident(name: str) -> str:
    """A validated identifier, quoted, in Snowflake's unquoted (upper) case."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise UnsafeIdentifier(f"{name!r} is not a plain SQL identifier (letters, digits, underscore)")
    return '"' + name.upper() + '"'


# Snowflake's fragments of the shared queries; REGEXP_LIKE matches the whole value, like
# DuckDB's regexp_full_match.
SNOWFLAKE = queries.Dialect(ident=ident, text="TO_VARCHAR({})", full_match="REGEXP_LIKE", param="%({})s",
                            ordered_array="ARRAY_AGG(id) WITHIN GROUP (ORDER BY id)",
                            strip="REGEXP_REPLACE({}, '[[:space:][:punct:]]', '')")


def object_name(name: str) -> str:
    """A possibly qualified object name (`stage`, `schema.stage`, `db.schema.stage`), validated.

    Left unquoted: stage references (`@name/path`) are written that way, and every part has
    been checked to be a plain identifier.
    """
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(IDENTIFIER.match(p) for p in parts):
        raise UnsafeIdentifier(f"{name!r} is not a stage name of the form [database.][schema.]name")
    return ".".join(p.upper() for p in parts)


def stage_location(stage: str, stage_url: str, uri: str) -> str:
    """`s3://bucket/some/prefix/` -> `@STAGE/some/prefix/`, for a stage whose URL is the bucket
    (or a prefix of it)."""
    base = stage_url.rstrip("/") + "/"
    if not uri.startswith(base):
        raise ValueError(f"{uri} is not under {base}, the URL of stage {stage}; point the stage at that bucket")
    path = uri[len(base):]
    if not STAGE_PATH.match(path) or ".." in path.split("/"):
        raise UnsafeIdentifier(f"{path!r} is not a safe stage path")
    return f"@{object_name(stage)}/{path}"


# --- the statements ---------------------------------------------------------------------------


def extract_select(domain: Domain) -> str:
    """The partition's slice: the schema fields, as text, named exactly as the schema names them.

    The Glue input table declares every field as a string and Entity Resolution maps parquet
    columns by name, so values are cast to VARCHAR and aliased with the configured (case-
    sensitive) field names rather than Snowflake's upper-case ones.
    """
    columns = ", ".join(f'TO_VARCHAR({ident(c)}) AS "{c}"' for c in domain.schema.columns)
    part = ident(domain.source.partition_column)
    return (
        f"SELECT {columns} FROM {ident(domain.source.table)} "
        f"WHERE {part} >= %(start)s AND {part} < %(end)s"
    )


def copy_location(location: str) -> str:
    """A stage location as COPY takes it: in single quotes, as Snowflake's COPY INTO documentation
    requires for paths with special characters (ours have `=` in `partition=<key>/run=<id>/`).
    `stage_location` admits no quote, so the literal cannot be ended early."""
    return f"'{location}'"


def unload_sql(location: str, select: str, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> str:
    # INCLUDE_QUERY_ID: every file name carries the unload's query id, so the parts of a retried
    # unload can never be mistaken for (or overwrite parts of) an earlier attempt's.
    return (
        f"COPY INTO {copy_location(location)} FROM ({select}) "
        f"FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE MAX_FILE_SIZE = {int(max_file_size)} INCLUDE_QUERY_ID = TRUE"
    )


def _slice(domain: Domain) -> str:
    part = ident(domain.source.partition_column)
    return f"SELECT * FROM {ident(domain.source.table)} WHERE {part} >= %(start)s AND {part} < %(end)s"


def profile_params(domain: Domain, start: dt.date, end: dt.date) -> dict:
    """Parameters of the extract, profile and sample statements (extras are ignored by pyformat)."""
    return {"start": start, "end": end, **queries.format_params(domain)}


def create_target_sql(table: str, columns: list[str]) -> str:
    body = ", ".join(f"{ident(c)} VARCHAR" for c in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {ident(table)} ({body}, "
        f"{ident(PARTITION_COLUMN)} VARCHAR NOT NULL, {ident(LOADED_AT_COLUMN)} TIMESTAMP_LTZ NOT NULL)"
    )


def staging_table(table: str, partition_key: str) -> str:
    """One staging table per load: two loads of the same partition at once never share one."""
    return f"{table}__LOAD_{partition_key.replace('-', '')}_{uuid.uuid4().hex[:8]}"


def create_staging_sql(staging: str, columns: list[str]) -> str:
    # TRANSIENT: no fail-safe storage for rows that live for one load. Not TEMPORARY: the
    # staging table must accept COPY in every Snowflake we test against (fakesnow refuses).
    body = ", ".join(f"{ident(c)} VARCHAR" for c in columns)
    return f"CREATE OR REPLACE TRANSIENT TABLE {ident(staging)} ({body})"


def copy_staging_sql(staging: str, location: str) -> str:
    # FORCE: a re-run must load the same files again (Snowflake skips files it loaded in the
    # last 64 days); the staging table is new for every load, so that is safe. Positional CSV columns land in
    # staging columns created in the header's order. PATTERN: only the data files, those whose
    # presence and header the load checked.
    return (
        f"COPY INTO {ident(staging)} FROM {copy_location(location)} FILE_FORMAT = ({CSV_FORMAT}) "
        f"PATTERN = '{layout.DATA_FILE_PATTERN}' FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
    )


def delete_partition_sql(table: str) -> str:
    return f"DELETE FROM {ident(table)} WHERE {ident(PARTITION_COLUMN)} = %(partition_key)s"


def insert_sql(table: str, staging: str, columns: list[str]) -> str:
    names = ", ".join(ident(c) for c in columns)
    return (
        f"INSERT INTO {ident(table)} ({names}, {ident(PARTITION_COLUMN)}, {ident(LOADED_AT_COLUMN)}) "
        f"SELECT {names}, %(partition_key)s, CURRENT_TIMESTAMP() FROM {ident(staging)}"
    )


# --- the matched stage's figures, computed over the stage ---------------------------------------
#
# Staged-file queries ("Querying data in staged files": `SELECT $n FROM @stage/path
# (FILE_FORMAT => 'name', PATTERN => 'regex')`) take a named file format only, and address
# columns by position. The header row of each part is row 1 (`METADATA$FILE_ROW_NUMBER`): the
# header query finds the MatchID column's position from it, the counts skip it. No row of the
# output leaves Snowflake: the orchestrator receives column names and counts.

OUTPUT_FORMAT = "ER_MATCH_OUTPUT_CSV"
# Columns the service may add to the schema's fields (RecordId, MatchID, MatchRule,
# ConfidenceLevel, InputSourceARN, Source, HashingProtocol...), with room to spare.
SERVICE_COLUMNS = 12


def output_format_sql() -> str:
    # TEMPORARY: it lives as long as the session, so nothing is left behind to drift.
    return f"CREATE TEMPORARY FILE FORMAT IF NOT EXISTS {OUTPUT_FORMAT} TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'"


def _staged(location: str) -> str:
    return f"{location} (FILE_FORMAT => '{OUTPUT_FORMAT}', PATTERN => '{layout.DATA_FILE_PATTERN}')"


def output_header_sql(location: str, width: int) -> str:
    columns = ", ".join(f"${i}" for i in range(1, width + 1))
    return f"SELECT {columns} FROM {_staged(location)} WHERE METADATA$FILE_ROW_NUMBER = 1 LIMIT 1"


def _records(location: str, columns: str) -> str:
    """The output's records (each part's header, row 1, skipped), as `columns` select them."""
    return f"SELECT {columns} FROM {_staged(location)} WHERE METADATA$FILE_ROW_NUMBER > 1"


def output_figures_sql(location: str, match_id_position: int) -> str:
    """`queries.output_counts_sql` over the stage, the MatchID found at its header position."""
    return queries.output_counts_sql(_records(location, f"${int(match_id_position)} AS m"))


def output_confidence_sql(location: str, header: list[str]) -> str:
    """`queries.output_confidence_sql` over the stage, the columns found by their header positions."""
    record, match_id, confidence = (header.index(c) + 1 for c in ("RecordId", "MatchID", "ConfidenceLevel"))
    columns = f"${record} AS id, ${match_id} AS m, TRY_TO_DOUBLE(${confidence}) AS c"
    return queries.output_confidence_sql(SNOWFLAKE, _records(location, columns))


def output_rows_sql(location: str) -> str:
    return _records(location, "COUNT(*)")


TABLE_EXISTS_SQL, COLUMNS_SQL = queries.table_exists_sql(SNOWFLAKE), queries.columns_sql(SNOWFLAKE)
# Semi-structured, binary and spatial types: their text form is not a value Entity Resolution
# can match (VARIANT may hold objects, so it is refused too: cast it to VARCHAR in a view).
NOT_TEXT_TYPES = ("VARIANT", "OBJECT", "ARRAY", "MAP", "BINARY", "GEOGRAPHY", "GEOMETRY", "VECTOR", "FILE")


def show_stage_sql(stage: str) -> tuple[str, str]:
    """SHOW STAGES for one stage name, and the name (LIKE's `_` may match others: filter on it)."""
    *namespace, name = object_name(stage).split(".")
    scope = f" IN SCHEMA {'.'.join(namespace)}" if len(namespace) == 2 else ""
    return f"SHOW STAGES LIKE %(name)s{scope}", name


# --- helpers -------------------------------------------------------------------------------------


def _column(cursor, name: str) -> int | None:
    """Index of a result column by case-insensitive name (Snowflake and fakesnow differ in case)."""
    names = [d[0].lower() for d in cursor.description or ()]
    return names.index(name) if name in names else None


def result_total(cursor, column: str) -> int:
    """A COPY statement's own count: the sum of `column` over its result rows (one per file).

    COPY INTO <table> reports `rows_loaded`, COPY INTO <location> `rows_unloaded`; a COPY that
    found no file answers with a status line only, which counts as zero.
    """
    rows = cursor.fetchall()
    index = _column(cursor, column)
    return sum(int(r[index] or 0) for r in rows) if index is not None else 0


class SourceChanged(RuntimeError):
    """The source slice changed between the unload and its profile."""


def private_key_text(value: str) -> str:
    """SNOWFLAKE_PRIVATE_KEY as dagster-snowflake's loader takes it (PEM text, or base64 of it,
    its own fallback).

    PEM kept in an environment variable often arrives with its line breaks flattened to the
    two characters `\\n` (.env files, JSON secrets, CI variables); PEM then fails to parse and
    dagster-snowflake's base64 fallback fails too. Those escapes are turned back into newlines.
    """
    text = value.strip()
    if text.startswith("-----BEGIN") and "\\n" in text:
        text = text.replace("\\r", "").replace("\\n", "\n")
    return text


PROBE_SELECT = "SELECT 'er-pipelines doctor' AS PROBE"


def stage_write_problem(exc: BaseException, location: str) -> str:
    """One line for an unload that failed: the error, and the permission that usually lacks.

    Snowflake writes with the storage integration's IAM role; an SSE-KMS bucket also needs
    kms:GenerateDataKey on its key, which S3 reports as a KMS access error."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    if "kms" in str(exc).lower():
        need = "kms:GenerateDataKey on the bucket's KMS key (and kms:Decrypt, for loading)"
    else:
        need = "s3:PutObject on this prefix (and, on an SSE-KMS bucket, kms:GenerateDataKey on its key)"
    return f"cannot unload to {location}: {first}; the stage's storage integration role needs {need}"


class SnowflakeWarehouse(Warehouse):
    """Snowflake through `dagster_snowflake.SnowflakeResource`, staging files on the bucket.

    `stage` is an external stage whose URL is `stage_url` (e.g. `s3://er-data-lake/`), created
    with a storage integration that may read and write the domains' prefixes. `object_store`
    is the same bucket through boto3: the extract prefix is emptied through it (COPY's OVERWRITE
    leaves the stale files of a larger earlier run) and the output's data files listed; the
    output itself (its header included) is read by Snowflake over the stage.
    """

    account: str
    user: str
    password: str | None = None
    private_key: str | None = Field(default=None, description="PEM key (optionally base64) for key-pair auth")
    private_key_path: str | None = None
    private_key_password: str | None = None
    role: str | None = None
    warehouse: str
    database: str
    schema_name: str
    stage: str
    stage_url: str
    object_store: ObjectStore
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    # --- connection ----------------------------------------------------------------------------

    def _resource(self):
        from dagster_snowflake import SnowflakeResource

        key = private_key_text(self.private_key) if self.private_key else None
        auth = {
            k: v
            for k, v in (("password", self.password), ("private_key", key),
                         ("private_key_path", self.private_key_path),
                         ("private_key_password", self.private_key_password))
            if v
        }
        return SnowflakeResource(
            account=self.account, user=self.user, role=self.role, warehouse=self.warehouse,
            database=self.database, schema=self.schema_name, **auth,
        )

    @contextmanager
    def connect(self) -> Iterator["snowflake.connector.SnowflakeConnection"]:  # noqa: F821
        with self._resource().get_connection() as conn:
            try:
                yield conn
            except BaseException:
                # get_connection only closes the connection when its body succeeds.
                conn.close()
                raise

    def location(self, uri: str) -> str:
        return stage_location(self.stage, self.stage_url, uri)

    # --- extract -------------------------------------------------------------------------------

    def unload_extract(self, domain: Domain, start: dt.date, end: dt.date, dest_uri: str) -> ExtractResult:
        location = self.location(dest_uri)
        params = profile_params(domain, start, end)
        self.object_store.delete_prefix(dest_uri)
        with self.connect() as conn:
            cursor = conn.cursor()
            unloaded = self._unload(cursor, location, extract_select(domain), params)
            profile = self._profile(cursor, domain, params)
            cursor.execute(queries.fingerprint_sql(SNOWFLAKE, domain, _slice(domain)), params)
            _, fingerprint = cursor.fetchone()
        if unloaded != profile["rows"]:
            # Partitions are closed periods, so this means a late write to the source: the
            # files and the checks would disagree. Fail rather than match a moving target.
            raise SourceChanged(
                f"{domain.source.table}: unloaded {unloaded} rows but the slice now has {profile['rows']}; "
                "the source changed during the extract, run it again"
            )
        return ExtractResult(rows=unloaded, files=self.object_store.list_files(dest_uri), profile=profile,
                             fingerprint=str(fingerprint))

    def slice_fingerprint(self, domain: Domain, start: dt.date, end: dt.date) -> tuple[int, str]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(queries.fingerprint_sql(SNOWFLAKE, domain, _slice(domain)), {"start": start, "end": end})
            rows, fingerprint = cursor.fetchone()
        return int(rows), str(fingerprint)

    def _unload(self, cursor, location: str, select: str, params: dict) -> int:
        cursor.execute(unload_sql(location, select, self.max_file_size), params)
        return result_total(cursor, "rows_unloaded")

    @staticmethod
    def _profile(cursor, domain: Domain, params: dict) -> dict:
        cursor.execute(queries.profile_sql(SNOWFLAKE, domain, _slice(domain)), params)
        counts = cursor.fetchone()
        cursor.execute(queries.profile_samples_sql(SNOWFLAKE, domain, _slice(domain)), params)
        return assemble_profile(domain, counts, cursor.fetchall())

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(COLUMNS_SQL, {"name": domain.source.table.upper()})
            found = {name: kind.upper() for name, kind in cursor.fetchall()}
        return schema_problems(domain, found, NOT_TEXT_TYPES, f"{self.database}.{self.schema_name} or not visible")

    # --- load ----------------------------------------------------------------------------------

    def load_matches(self, domain: Domain, partition_key: str, src_uri: str, accept) -> LoadResult:
        if not PARTITION_KEY.match(partition_key):
            raise ValueError(f"{partition_key!r} is not a partition key (YYYY-MM-DD)")
        table = domain.target.table
        refuse = functools.partial(refuse_output, src_uri, table, partition_key)
        files = [f for f in self.object_store.list_files(src_uri) if layout.is_data_file(f)]
        if not files:
            raise refuse("has no data files (missing or emptied)")
        with self.connect() as conn:
            cursor = conn.cursor()
            columns = self._output_columns(cursor, domain, src_uri, refuse)
            # DDL commits any open transaction in Snowflake, so it all happens before BEGIN.
            cursor.execute(create_target_sql(table, columns))
            self._check_target_columns(cursor, table, columns)
            staging = staging_table(table, partition_key)
            cursor.execute(create_staging_sql(staging, columns))
            try:
                try:
                    cursor.execute(copy_staging_sql(staging, self.location(src_uri)))
                except Exception as exc:
                    raise refuse(f"cannot be read ({str(exc).strip().splitlines()[0]})") from None
                copied = result_total(cursor, "rows_loaded")
                figures = self._figures(cursor, domain, f"SELECT * FROM {ident(staging)}", columns)
                if not figures["rows"]:
                    raise refuse("has no rows")
                if not accept(figures):
                    return LoadResult(rows=0, table=table, figures=figures, replaced=False)
                self._replace_partition(cursor, table, staging, columns, partition_key, copied)
            finally:
                # A staging table left behind by a killed load is TRANSIENT and holds one output.
                with suppress(Exception):
                    cursor.execute(f"DROP TABLE IF EXISTS {ident(staging)}")
        return LoadResult(rows=copied, table=table, figures=figures, replaced=True)

    def _output_columns(self, cursor, domain: Domain, src_uri: str, refuse) -> list[str]:
        columns = self._output_header(cursor, domain, self.location(src_uri))
        if not columns:
            raise refuse("has no header line")
        missing = [c for c in (domain.schema.unique_id, "MatchID") if c.upper() not in {h.upper() for h in columns}]
        if missing:
            raise refuse(f"lacks the columns {missing}")
        reserved = {PARTITION_COLUMN, LOADED_AT_COLUMN} & {c.upper() for c in columns}
        if reserved:
            raise ValueError(f"{src_uri}: match output columns {sorted(reserved)} clash with the load's own columns")
        for column in columns:
            ident(column)  # refuse a header that is not plain identifiers before any SQL runs
        return columns

    def _check_target_columns(self, cursor, table: str, columns: list[str]) -> None:
        cursor.execute(COLUMNS_SQL, {"name": table.upper()})
        existing = {row[0].upper() for row in cursor.fetchall()}
        missing = [c for c in columns if c.upper() not in existing]
        if missing:
            raise ValueError(
                f"target table {table.upper()} lacks match output columns {missing}; "
                "add them (ALTER TABLE ... ADD COLUMN ... VARCHAR) or drop the table to have it recreated"
            )

    def _replace_partition(self, cursor, table, staging, columns, partition_key, copied: int) -> None:
        """Swap the partition's rows for the staged ones, in one transaction."""
        key = {"partition_key": partition_key}
        cursor.execute("BEGIN")
        try:
            cursor.execute(delete_partition_sql(table), key)
            cursor.execute(insert_sql(table, staging, columns), key)
            if cursor.rowcount != copied:
                raise RuntimeError(f"staged {copied} rows in {staging} but inserted {cursor.rowcount}")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    # --- the matched stage's figures -------------------------------------------------------------

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str) -> dict:
        output, errors = self.location(output_uri), self.location(error_uri)
        threshold = domain.dq.min_confidence.threshold if domain.ml_matching else None
        with self.connect() as conn:
            *counts, confidence = self._output_counts(conn.cursor(), domain, output, errors, threshold)
        return match_figures(*counts, confidence)

    def _output_header(self, cursor, domain: Domain, output: str) -> list[str]:
        """Column names of the output's header row, read by Snowflake over the stage (AWS
        documents which columns the output has, not their order): no byte of the output
        reaches this process. The row has at most the schema's columns plus the service's."""
        cursor.execute(output_format_sql())
        cursor.execute(output_header_sql(output, len(domain.schema.columns) + SERVICE_COLUMNS))
        row = cursor.fetchone()
        return [name for name in row if name is not None] if row else []

    def _output_counts(self, cursor, domain: Domain, output: str, errors: str,
                       threshold: float | None) -> tuple:
        """(records, MatchIDs, matched records, rejected rows, `confidence_figures` when a
        `threshold` is given, else None), counted by Snowflake over the stage."""
        width = len(domain.schema.columns) + SERVICE_COLUMNS
        header = self._output_header(cursor, domain, output) or None
        if header is None:  # no data file: the job wrote no record
            counts = (0, 0, 0)
        elif "MatchID" not in header:
            raise ValueError(f"{output}: no MatchID among the first {width} columns of the output header {header}")
        else:
            cursor.execute(output_figures_sql(output, header.index("MatchID") + 1))
            counts = cursor.fetchone()
        confidence = None
        if threshold is not None:
            row = None
            if header is not None and "ConfidenceLevel" in header:
                if "RecordId" not in header:
                    raise ValueError(f"{output}: no RecordId among the first {width} columns of the output header "
                                     f"{header}")
                cursor.execute(output_confidence_sql(output, list(header)), {"threshold": threshold})
                *row, samples = cursor.fetchone()
                # The connector returns an ARRAY as its JSON text (snowflake/connector/converter.py:
                # _ARRAY_to_python converts nothing).
                row = (*row, json.loads(samples) if isinstance(samples, str) else samples)
            confidence = confidence_figures(header, row)
        cursor.execute(output_rows_sql(errors))
        return (*counts, cursor.fetchone()[0], confidence)

    # --- inspection ----------------------------------------------------------------------------

    @staticmethod
    def _table_exists(cursor, table: str) -> bool:
        cursor.execute(TABLE_EXISTS_SQL, {"name": table.upper()})
        return bool(cursor.fetchone()[0])

    def table_exists(self, table: str) -> bool:
        with self.connect() as conn:
            return self._table_exists(conn.cursor(), table)

    @staticmethod
    def _figures(cursor, domain: Domain, rows: str, header: list[str]) -> dict:
        """`target_figures` of `rows`, whose columns are the output's `header`."""
        cursor.execute(queries.figures_sql(SNOWFLAKE, domain, rows))
        counts = cursor.fetchone()
        cursor.execute(queries.figures_samples_sql(SNOWFLAKE, domain, rows))
        figures = target_figures(counts, cursor.fetchall())
        # A schema column the rows lack has no value left at all: it counts 0, and no_value_loss
        # says so, as in the DuckDB warehouse (counting it would fail: no such column).
        present = {c.upper() for c in header}
        columns = [c for c in domain.schema.columns if c.upper() in present]
        found = ()
        if columns:
            cursor.execute(queries.non_empty_sql(SNOWFLAKE, domain, rows, columns))
            found = cursor.fetchone()
        non_empty = {**dict.fromkeys(domain.schema.columns, 0), **{c: int(n or 0) for c, n in zip(columns, found)}}
        return {**figures, "non_empty": non_empty}

    def stage_problems(self, cursor) -> list[str]:
        sql, name = show_stage_sql(self.stage)
        cursor.execute(sql, {"name": name})
        name_at, url_at = _column(cursor, "name"), _column(cursor, "url")
        urls = [row[url_at] for row in cursor.fetchall() if row[name_at].upper() == name]
        if not urls:
            return [f"stage {self.stage} does not exist in {self.database}.{self.schema_name} or is not visible to the role"]
        url = urls[0]
        if url.rstrip("/") != self.stage_url.rstrip("/"):
            return [f"stage {self.stage} points at {url}, not at SNOWFLAKE_STAGE_URL={self.stage_url}"]
        return []

    def probe_stage_write(self, domain: Domain) -> str:
        """Prove the stage takes an unload where extracts go: one row to a scratch prefix under the
        domain's extract prefix, then removed through the object store as stale extracts are."""
        import uuid

        scratch = layout.probe_prefix(domain, uuid.uuid4().hex)
        location = self.location(scratch)
        try:
            with self.connect() as conn:
                self._unload(conn.cursor(), location, PROBE_SELECT, {})
        except Exception as exc:
            raise RuntimeError(stage_write_problem(exc, location)) from exc
        finally:
            removed = self.object_store.delete_prefix(scratch)
        return f"unloaded a probe row to {location} and removed it ({removed} object(s))"

    def check_ready(self, domain: Domain) -> list[str]:
        problems = []
        for uri in (layout.extract_prefix(domain), layout.output_prefix(domain)):
            try:
                self.location(uri + "/")
            except ValueError as exc:
                problems.append(str(exc))
        with self.connect() as conn:
            cursor = conn.cursor()
            if not self._table_exists(cursor, domain.source.table):
                problems.append(
                    f"source table {domain.source.table.upper()} does not exist in "
                    f"{self.database}.{self.schema_name} or is not visible to the role"
                )
            problems.extend(self.stage_problems(cursor))
        return problems
