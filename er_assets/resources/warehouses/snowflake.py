"""The production warehouse: Snowflake, moving data through an external stage on the bucket.

Extract unloads the partition's slice with `COPY INTO @stage/...` straight to S3, and beside it
the context records of known entities its job needs (the entity registry); load copies the
match output CSV from the stage into a staging table and, in one transaction, swaps the
partition's own rows into the target and applies the job's groups to the registry
(`registry.Registry`, the same SQL the DuckDB warehouse runs, rendered with `SNOWFLAKE`). No
rows pass through the Dagster worker. The statements are built by the small functions at the
top of this module (the measuring queries by `queries`, the registry's by `registry`, rendered
with Snowflake's fragments), so tests can run them through fakesnow or parse them with sqlglot,
and a reviewer can read them in one place.

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
from typing import TYPE_CHECKING

from pydantic import Field

from er_assets import layout
from er_assets.config import IDENTIFIER, Domain
from er_assets.resources.object_store import ObjectStore
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

if TYPE_CHECKING:
    import snowflake.connector

# Stage paths appear unquoted after `@stage/`: letters, digits and the few punctuation marks
# our layout uses (`partition=2024-01-01`, workflow names with dashes). No quotes, spaces, `;`.
STAGE_PATH = re.compile(r"^[A-Za-z0-9_./=-]*$")
PARTITION_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Columns the load adds to every match output row; the entity id is written by the registry.
PARTITION_COLUMN = "PARTITION_KEY"
LOADED_AT_COLUMN = "LOADED_AT"
ENTITY_COLUMN = "ENTITY_ID"
# The file name prefix of the extract's context files. A COPY INTO <location> path may end in a
# file name prefix: every file written gets it, then a suffix unique across the parallel
# threads (`_0_0_0`, with INCLUDE_QUERY_ID the query's UUID as well) and the format's extension
# (`.snappy.parquet`); without one the files begin `data_` (docs.snowflake.com/en/sql-reference/
# sql/copy-into-location, and "Unloading into single or multiple files"). So the context files
# are `context_...parquet`: layout.CONTEXT_FILE_PATTERN tells them apart, and, being data files
# too (layout.is_data_file), the Glue table reads them with the slice's.
CONTEXT_PREFIX = "context_"
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
SNOWFLAKE = queries.Dialect(
    ident=ident,
    text="TO_VARCHAR({})",
    full_match="REGEXP_LIKE",
    param="%({})s",
    ordered_array="ARRAY_AGG(id) WITHIN GROUP (ORDER BY id)",
    strip="REGEXP_REPLACE({}, '[[:space:][:punct:]]', '')",
    # HASH is a signed 64-bit number; the modulo keeps fakesnow's
    # (DuckDB's unsigned) hash within BIGINT too.
    hash="MOD(HASH({}), 9223372036854775807)",
)


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
    path = uri[len(base) :]
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
    return f"SELECT {columns} FROM {ident(domain.source.table)} WHERE {part} >= %(start)s AND {part} < %(end)s"


def context_select(domain: Domain) -> str:
    """The context records of the slice's job (`registry.context_sql` over the slice, the target
    and its PARTITION_KEY), shaped as `extract_select` shapes the slice: text columns named
    exactly as the schema names them, since the Glue table reads both kinds of file as one."""
    rows = registry.context_sql(SNOWFLAKE, domain, _slice(domain), domain.target.table, PARTITION_COLUMN)
    columns = ", ".join(f'TO_VARCHAR({ident(c)}) AS "{c}"' for c in domain.schema.columns)
    return f"SELECT {columns} FROM ({rows})"


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
        f"{ident(PARTITION_COLUMN)} VARCHAR NOT NULL, {ident(LOADED_AT_COLUMN)} TIMESTAMP_LTZ NOT NULL, "
        f"{ident(ENTITY_COLUMN)} VARCHAR)"
    )


def add_entity_column_sql(table: str) -> str:
    """A target created before entity ids existed gets the column (`rebuild_entities` fills it)."""
    return f"ALTER TABLE {ident(table)} ADD COLUMN IF NOT EXISTS {ident(ENTITY_COLUMN)} VARCHAR"


def staging_table(table: str, partition_key: str) -> str:
    """One staging table per load: two loads of the same partition at once never share one."""
    return f"{table}__LOAD_{partition_key.replace('-', '')}_{uuid.uuid4().hex[:8]}"


def create_staging_sql(staging: str, columns: list[str]) -> str:
    # TRANSIENT: no fail-safe storage for rows that live for one load. Not TEMPORARY: the
    # staging table must accept COPY in every Snowflake we test against (fakesnow refuses).
    body = ", ".join(f"{ident(c)} VARCHAR" for c in columns)
    return f"CREATE OR REPLACE TRANSIENT TABLE {ident(staging)} ({body})"


def context_table(staging: str) -> str:
    """The load's table of context record ids, named after (and dropped with) its staging table."""
    return f"{staging}_CONTEXT"


def create_context_sql(context: str) -> str:
    # TRANSIENT and per load, as the staging table: a load's context ids are its own.
    return f"CREATE OR REPLACE TRANSIENT TABLE {ident(context)} (RECORD_ID VARCHAR)"


def context_ids_select(location: str, unique_id: str) -> str:
    """The distinct unique ids (as `id`, text) of the context records in the extract at stage
    `location`: its context parquet files queried over the stage (docs.snowflake.com/en/
    user-guide/querying-stage: `SELECT $1:<element> FROM @stage/path (FILE_FORMAT => '<named
    format>', PATTERN => '<regex>')`; a parquet row is the one OBJECT column `$1`, so a column is
    `$1:"name"`, by its case-sensitive name). NULLs are left out: the ids stand in IN lists."""
    ident(unique_id)  # a plain identifier: it can never end the quoted element name
    staged = f"{location} (FILE_FORMAT => '{PARQUET_FORMAT}', PATTERN => '{layout.CONTEXT_FILE_PATTERN}')"
    return f'SELECT DISTINCT id FROM (SELECT $1:"{unique_id}"::VARCHAR AS id FROM {staged}) WHERE id IS NOT NULL'


def fill_context_sql(context: str, location: str, unique_id: str) -> str:
    return f"INSERT INTO {ident(context)} (RECORD_ID) {context_ids_select(location, unique_id)}"


def own_rows_sql(staging: str, context: str, unique_id: str) -> str:
    """The staged rows that are the partition's own: every row but the context records'. NOT
    EXISTS, correlated in a WHERE clause as Snowflake supports it (docs.snowflake.com/en/
    sql-reference/operators-subquery), and true for a row whose id is NULL (a NOT IN would drop
    it, hiding it from the figures)."""
    return (
        f"SELECT * FROM {ident(staging)} s WHERE NOT EXISTS (SELECT 1 FROM {ident(context)} c "
        f"WHERE c.RECORD_ID = TO_VARCHAR(s.{ident(unique_id)}))"
    )


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


def insert_sql(table: str, rows: str, columns: list[str]) -> str:
    """Insert `rows` (a SELECT of the staged rows to keep, `own_rows_sql`) as the partition's;
    ENTITY_ID is left to the registry, in the same transaction."""
    names = ", ".join(ident(c) for c in columns)
    return (
        f"INSERT INTO {ident(table)} ({names}, {ident(PARTITION_COLUMN)}, {ident(LOADED_AT_COLUMN)}) "
        f"SELECT {names}, %(partition_key)s, CURRENT_TIMESTAMP() FROM ({rows})"
    )


# --- the matched stage's figures, computed over the stage ---------------------------------------
#
# Staged-file queries ("Querying data in staged files": `SELECT $n FROM @stage/path
# (FILE_FORMAT => 'name', PATTERN => 'regex')`) take a named file format only, and address
# columns by position. The header row of each part is row 1 (`METADATA$FILE_ROW_NUMBER`): the
# header query finds the MatchID column's position from it, the counts skip it. No row of the
# output leaves Snowflake: the orchestrator receives column names and counts.

OUTPUT_FORMAT = "ER_MATCH_OUTPUT_CSV"
# The extract's parquet files (its context records), queried over the stage.
PARQUET_FORMAT = "ER_EXTRACT_PARQUET"
# Columns the service may add to the schema's fields (RecordId, MatchID, MatchRule,
# ConfidenceLevel, InputSourceARN, Source, HashingProtocol...), with room to spare.
SERVICE_COLUMNS = 12


def output_format_sql() -> str:
    # TEMPORARY: it lives as long as the session, so nothing is left behind to drift.
    return f"CREATE TEMPORARY FILE FORMAT IF NOT EXISTS {OUTPUT_FORMAT} TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'"


def parquet_format_sql() -> str:
    return f"CREATE TEMPORARY FILE FORMAT IF NOT EXISTS {PARQUET_FORMAT} TYPE = PARQUET"


def _staged(location: str) -> str:
    return f"{location} (FILE_FORMAT => '{OUTPUT_FORMAT}', PATTERN => '{layout.DATA_FILE_PATTERN}')"


def output_header_sql(location: str, width: int) -> str:
    columns = ", ".join(f"${i}" for i in range(1, width + 1))
    return f"SELECT {columns} FROM {_staged(location)} WHERE METADATA$FILE_ROW_NUMBER = 1 LIMIT 1"


def _records(location: str, columns: str) -> str:
    """The output's records (each part's header, row 1, skipped), as `columns` select them."""
    return f"SELECT {columns} FROM {_staged(location)} WHERE METADATA$FILE_ROW_NUMBER > 1"


def output_figures_sql(
    location: str, match_id_position: int, record_id_position: int = 0, context: str = "", unique_id: str = ""
) -> str:
    """`queries.output_counts_sql` over the stage, the MatchID found at its header position.

    With `context` (the extract's stage location, holding context files) only the partition's
    own records count: the output's RecordId (at `record_id_position`) is looked up among the
    context ids (`context_ids_select`) by a LEFT JOIN, so `own` is a plain column: Snowflake
    documents IN and correlated EXISTS subqueries in a WHERE clause (docs.snowflake.com/en/
    sql-reference/operators-subquery), not in the SELECT list `output_counts_sql` puts `own` in;
    and a record without an id is never a context record, as a NOT IN would make it."""
    if not context:
        return queries.output_counts_sql(_records(location, f"${int(match_id_position)} AS m"))
    output = _records(location, f"${int(match_id_position)} AS m, ${int(record_id_position)} AS id")
    records = (
        f"SELECT o.m, c.id IS NULL AS own_row FROM ({output}) o "
        f"LEFT JOIN ({context_ids_select(context, unique_id)}) c ON c.id = o.id"
    )
    return queries.output_counts_sql(records, "own_row")


def output_confidence_sql(location: str, header: list[str], context: str = "", unique_id: str = "") -> str:
    """`queries.output_confidence_sql` over the stage, the columns found by their header
    positions; with `context`, the partition's own records only, told apart as
    `output_figures_sql` does."""
    record, match_id, confidence = (header.index(c) + 1 for c in ("RecordId", "MatchID", "ConfidenceLevel"))
    columns = f"${record} AS id, ${match_id} AS m, TRY_TO_DOUBLE(${confidence}) AS c"
    if not context:
        return queries.output_confidence_sql(SNOWFLAKE, _records(location, columns))
    records = (
        f"SELECT o.id, o.m, o.c, c.id IS NULL AS own_row FROM ({_records(location, columns)}) o "
        f"LEFT JOIN ({context_ids_select(context, unique_id)}) c ON c.id = o.id"
    )
    return queries.output_confidence_sql(SNOWFLAKE, records, "own_row")


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
            for k, v in (
                ("password", self.password),
                ("private_key", key),
                ("private_key_path", self.private_key_path),
                ("private_key_password", self.private_key_password),
            )
            if v
        }
        return SnowflakeResource(
            account=self.account,
            user=self.user,
            role=self.role,
            warehouse=self.warehouse,
            database=self.database,
            schema=self.schema_name,
            **auth,
        )

    @contextmanager
    def connect(self) -> Iterator[snowflake.connector.SnowflakeConnection]:
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
            # The fingerprint (with the registry's size) before the context: a load committed in
            # between makes the next fingerprint differ, so stale context is never reused.
            _, fingerprint = self._fingerprint(cursor, domain, params)
            context_rows = self._unload_context(cursor, domain, location, params)
        if unloaded != profile["rows"]:
            # Partitions are closed periods, so this means a late write to the source: the
            # files and the checks would disagree. Fail rather than match a moving target.
            raise SourceChanged(
                f"{domain.source.table}: unloaded {unloaded} rows but the slice now has {profile['rows']}; "
                "the source changed during the extract, run it again"
            )
        return ExtractResult(
            rows=unloaded,
            files=self.object_store.list_files(dest_uri),
            profile=profile,
            fingerprint=fingerprint,
            context_rows=context_rows,
        )

    def _unload_context(self, cursor, domain: Domain, location: str, params: dict) -> int:
        """Unload the context records of the slice's job (`context_select`) beside its records,
        under the CONTEXT_PREFIX file name prefix, when the domain has loaded partitions (the
        registry's members and the target exist); their number."""
        if not (
            self._table_exists(cursor, registry.Tables.of(domain).members)
            and self._table_exists(cursor, domain.target.table)
        ):
            return 0
        return self._unload(cursor, location.rstrip("/") + "/" + CONTEXT_PREFIX, context_select(domain), params)

    def _fingerprint(self, cursor, domain: Domain, params: dict) -> tuple[int, str]:
        """The slice's fingerprint and the registry's version for its partition
        (`registry.version_sql`), as the DuckDB warehouse has them."""
        cursor.execute(queries.fingerprint_sql(SNOWFLAKE, domain, _slice(domain)), params)
        rows, total = cursor.fetchone()
        version = 0
        if self._table_exists(cursor, registry.Tables.of(domain).members):
            # The partition key is the period's first day.
            cursor.execute(registry.version_sql(SNOWFLAKE, domain), {"partition": params["start"].isoformat()})
            version = cursor.fetchone()[0]
        return int(rows), f"{total}/{version}"

    def slice_fingerprint(self, domain: Domain, start: dt.date, end: dt.date) -> tuple[int, str]:
        with self.connect() as conn:
            return self._fingerprint(conn.cursor(), domain, {"start": start, "end": end})

    def _unload(self, cursor, location: str, select: str, params: dict) -> int:
        cursor.execute(unload_sql(location, select, self.max_file_size), params)
        return result_total(cursor, "rows_unloaded")

    @staticmethod
    def _profile(cursor, domain: Domain, params: dict) -> dict:
        cursor.execute(queries.profile_sql(SNOWFLAKE, domain, _slice(domain)), params)
        counts = named_row(cursor)
        cursor.execute(queries.profile_samples_sql(SNOWFLAKE, domain, _slice(domain)), params)
        return assemble_profile(domain, counts, cursor.fetchall())

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(COLUMNS_SQL, {"name": domain.source.table.upper()})
            found = {name: kind.upper() for name, kind in cursor.fetchall()}
        return schema_problems(domain, found, NOT_TEXT_TYPES, f"{self.database}.{self.schema_name} or not visible")

    # --- load ----------------------------------------------------------------------------------

    def load_matches(
        self, domain: Domain, partition_key: str, src_uri: str, accept, extract_uri: str = "", run_id: str = ""
    ) -> LoadResult:
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
            # The target has every schema column, even one this output lacks: the registry
            # derives blocking keys from the target's rows (the output is then measured and
            # judged by the checks, not failed by a missing column).
            present = {c.upper() for c in columns}
            target_columns = columns + [c for c in domain.schema.columns if c.upper() not in present]
            # DDL commits any open transaction in Snowflake (docs.snowflake.com/en/sql-reference/
            # transactions: a DDL statement runs as its own transaction, committing the one that
            # is open), so every table and file format the load needs is created before BEGIN.
            cursor.execute(create_target_sql(table, target_columns))
            self._check_target_columns(cursor, table, target_columns)
            cursor.execute(add_entity_column_sql(table))
            self._registry(cursor, domain).create()
            staging = staging_table(table, partition_key)
            context = context_table(staging)
            try:
                cursor.execute(create_staging_sql(staging, columns))
                cursor.execute(create_context_sql(context))
                try:
                    cursor.execute(copy_staging_sql(staging, self.location(src_uri)))
                except Exception as exc:
                    raise refuse(f"cannot be read ({str(exc).strip().splitlines()[0]})") from None
                self._fill_context(cursor, domain, context, extract_uri)
                own = own_rows_sql(staging, context, domain.schema.unique_id)
                figures = self._figures(cursor, domain, own, columns)
                if not figures["rows"]:
                    raise refuse("has no rows")
                identity, replaced = self._replace_partition(
                    cursor, domain, partition_key, run_id, columns, staging, context, figures, accept
                )
            finally:
                # Tables left behind by a killed load are TRANSIENT and hold one output.
                for leftover in (staging, context):
                    with suppress(Exception):
                        cursor.execute(f"DROP TABLE IF EXISTS {ident(leftover)}")
        return LoadResult(
            rows=figures["rows"] if replaced else 0, table=table, figures=figures, replaced=replaced, identity=identity
        )

    def _registry(self, cursor, domain: Domain) -> registry.Registry:
        """The domain's registry on this cursor; the catalogue spells its tables in upper case."""

        def execute(sql: str, params: dict):
            # No parameters, no pyformat interpolation: a statement is sent as written.
            cursor.execute(sql, params or None)
            return cursor

        return registry.Registry(SNOWFLAKE, domain, execute, domain.target.table, PARTITION_COLUMN, str.upper)

    def _context_files(self, extract_uri: str) -> list[str]:
        """The extract's context files (layout.CONTEXT_FILE_PATTERN), listed, never read."""
        if not extract_uri:
            return []
        return [
            f
            for f in self.object_store.list_files(extract_uri)
            if re.fullmatch(layout.CONTEXT_FILE_PATTERN, f.rsplit("/", 1)[-1])
        ]

    def _fill_context(self, cursor, domain: Domain, context: str, extract_uri: str) -> None:
        """The load's context table gets the ids of the context records the extract at
        `extract_uri` gave the job, read by Snowflake over the stage."""
        if self._context_files(extract_uri):
            cursor.execute(parquet_format_sql())
            cursor.execute(fill_context_sql(context, self.location(extract_uri), domain.schema.unique_id))

    def _output_columns(self, cursor, domain: Domain, src_uri: str, refuse) -> list[str]:
        columns = self._output_header(cursor, domain, self.location(src_uri))
        if not columns:
            raise refuse("has no header line")
        missing = [c for c in (domain.schema.unique_id, "MatchID") if c.upper() not in {h.upper() for h in columns}]
        if missing:
            raise refuse(f"lacks the columns {missing}")
        reserved = {PARTITION_COLUMN, LOADED_AT_COLUMN, ENTITY_COLUMN} & {c.upper() for c in columns}
        if reserved:
            raise ValueError(f"{src_uri}: match output columns {sorted(reserved)} clash with the load's own columns")
        for column in columns:
            ident(column)  # refuse a header that is not plain identifiers before any SQL runs
        return columns

    def _check_target_columns(self, cursor, table: str, columns: list[str]) -> None:
        """An existing target must have the output's columns and the schema's (the registry's
        blocking keys read them): said before anything is staged, never a failure mid-load."""
        cursor.execute(COLUMNS_SQL, {"name": table.upper()})
        existing = {row[0].upper() for row in cursor.fetchall()}
        missing = [c for c in columns if c.upper() not in existing]
        if missing:
            raise ValueError(
                f"target table {table.upper()} lacks match output columns {missing}; "
                "add them (ALTER TABLE ... ADD COLUMN ... VARCHAR) or drop the table to have it recreated"
            )

    def _replace_partition(
        self,
        cursor,
        domain: Domain,
        partition_key: str,
        run_id: str,
        columns: list[str],
        staging: str,
        context: str,
        figures: dict,
        accept,
    ) -> tuple:
        """In one transaction: take the domain's registry lock (`registry.lock_sql`, first, so
        loads of a domain take turns), swap the partition's rows for its own staged ones, apply
        the whole job's groups (context rows included) to the registry, then commit only if
        `accept({**figures, "identity": ...})`. Returns (IdentityFigures, committed)."""
        table, key = domain.target.table, {"partition_key": partition_key}
        cursor.execute("BEGIN")
        try:
            cursor.execute(registry.lock_sql(SNOWFLAKE, domain), {"run": run_id})
            cursor.execute(delete_partition_sql(table), key)
            cursor.execute(insert_sql(table, own_rows_sql(staging, context, domain.schema.unique_id), columns), key)
            # The insert's own count against the staged own rows `accept` judges.
            if cursor.rowcount != figures["rows"]:
                raise RuntimeError(f"staged {figures['rows']} own rows in {staging} but inserted {cursor.rowcount}")
            identity = self._registry(cursor, domain).apply(
                partition_key,
                run_id,
                f"SELECT * FROM {ident(staging)}",
                f"SELECT RECORD_ID AS record_id FROM {ident(context)}",
            )
            if not accept({**figures, "identity": identity}):
                cursor.execute("ROLLBACK")
                return identity, False
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return identity, True

    # --- the matched stage's figures -------------------------------------------------------------

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str, extract_uri: str = "") -> dict:
        output, errors = self.location(output_uri), self.location(error_uri)
        threshold = domain.dq.min_confidence.threshold if domain.ml_matching else None
        # The extract's stage location when it gave the job context records: they are not counted.
        context = self.location(extract_uri) if self._context_files(extract_uri) else ""
        with self.connect() as conn:
            counts, rejected, confidence = self._output_counts(
                conn.cursor(), domain, output, errors, threshold, context
            )
        return match_figures(counts, rejected, confidence)

    def _output_header(self, cursor, domain: Domain, output: str) -> list[str]:
        """Column names of the output's header row, read by Snowflake over the stage (AWS
        documents which columns the output has, not their order): no byte of the output
        reaches this process. The row has at most the schema's columns plus the service's."""
        cursor.execute(output_format_sql())
        cursor.execute(output_header_sql(output, len(domain.schema.columns) + SERVICE_COLUMNS))
        row = cursor.fetchone()
        return [name for name in row if name is not None] if row else []

    def _output_counts(
        self, cursor, domain: Domain, output: str, errors: str, threshold: float | None, context: str = ""
    ) -> tuple[OutputCounts, int, dict | None]:
        """(the output's counts, rejected rows, `confidence_figures` when a `threshold` is
        given, else None), counted by Snowflake over the stage; with `context` (the extract's
        stage location) the records are the partition's own only."""
        width = len(domain.schema.columns) + SERVICE_COLUMNS
        header = self._output_header(cursor, domain, output) or None
        if header is None:  # no data file: the job wrote no record
            counts = OutputCounts()
        elif "MatchID" not in header:
            raise ValueError(f"{output}: no MatchID among the first {width} columns of the output header {header}")
        elif context and "RecordId" not in header:
            raise ValueError(
                f"{output}: no RecordId among the first {width} columns of the output header {header}, "
                "so its context records cannot be told apart"
            )
        elif context:
            cursor.execute(parquet_format_sql())
            cursor.execute(
                output_figures_sql(
                    output, header.index("MatchID") + 1, header.index("RecordId") + 1, context, domain.schema.unique_id
                )
            )
            counts = OutputCounts.read(named_row(cursor))
        else:
            cursor.execute(output_figures_sql(output, header.index("MatchID") + 1))
            counts = OutputCounts.read(named_row(cursor))
        confidence = None
        if threshold is not None:
            row = None
            if header is not None and "ConfidenceLevel" in header:
                if "RecordId" not in header:
                    raise ValueError(
                        f"{output}: no RecordId among the first {width} columns of the output header {header}"
                    )
                if context:
                    cursor.execute(parquet_format_sql())
                cursor.execute(
                    output_confidence_sql(output, list(header), context, domain.schema.unique_id),
                    {"threshold": threshold},
                )
                *row, samples = cursor.fetchone()
                # The connector returns an ARRAY as its JSON text (snowflake/connector/converter.py:
                # _ARRAY_to_python converts nothing).
                row = (*row, json.loads(samples) if isinstance(samples, str) else samples)
            confidence = confidence_figures(header, row)
        cursor.execute(output_rows_sql(errors))
        return counts, cursor.fetchone()[0], confidence

    # --- the entity registry -------------------------------------------------------------------

    def show_entity(self, domain: Domain, ident: str) -> dict:
        with self.connect() as conn:
            cursor = conn.cursor()
            if not self._table_exists(cursor, domain.target.table):
                return {}
            return self._registry(cursor, domain).show(ident)

    def rebuild_entities(self, domain: Domain, run_id: str) -> dict:
        with self.connect() as conn:
            cursor = conn.cursor()
            if not self._table_exists(cursor, domain.target.table):
                return registry.nothing_rebuilt()
            reg = self._registry(cursor, domain)
            # DDL before BEGIN, as in the load: it would commit the open transaction.
            reg.create()
            cursor.execute(add_entity_column_sql(domain.target.table))
            with transaction(cursor.execute):
                cursor.execute(registry.lock_sql(SNOWFLAKE, domain), {"run": run_id})
                return reg.rebuild(run_id)

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
        found: dict = {}
        if columns:
            cursor.execute(queries.non_empty_sql(SNOWFLAKE, domain, rows, columns))
            found = named_row(cursor)
        return {**figures, "non_empty": non_empty(domain, found)}

    def stage_problems(self, cursor) -> list[str]:
        sql, name = show_stage_sql(self.stage)
        cursor.execute(sql, {"name": name})
        name_at, url_at = _column(cursor, "name"), _column(cursor, "url")
        urls = [row[url_at] for row in cursor.fetchall() if row[name_at].upper() == name]
        if not urls:
            return [
                f"stage {self.stage} does not exist in {self.database}.{self.schema_name} or is not visible to the role"
            ]
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
