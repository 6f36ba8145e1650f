"""The Snowflake warehouse's real SQL, run through fakesnow (DuckDB underneath, in-process).

fakesnow executes COPY INTO <table> from a `file://` stage, transactions and
information_schema, but cannot unload (COPY INTO @stage) nor query staged files. Those
statements (the slice's and the context records' unloads, the context ids read from the
extract's parquet, the matched stage's counts) are therefore checked by parsing them with
sqlglot's Snowflake dialect and against a snapshot, and `FakesnowWarehouse` replaces only them.
The entity registry's SQL runs through fakesnow (test_registry_snowflake.py) and is parsed here.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from er_assets import layout
from er_assets.config import load_config
from er_assets.errors import UpstreamRefused
from er_assets.resources.warehouses import registry
from er_assets.resources.warehouses import snowflake as sf
from er_assets.resources.warehouses.base import SAMPLE_IDS
from er_assets.resources.warehouses.queries import blank_sql
from er_assets_tests.helpers import BUCKET, ML_EXAMPLE, PATTERN_CLAUSE, STAGE, create_source, fake_snowflake, warehouse

PARTITION = "2024-03-05"


def accept_all(figures: dict) -> bool:
    """The load's checks, all passing."""
    return True


def counts(stats: dict) -> tuple[int, int, int]:
    return stats["rows"], stats["duplicate_ids"], stats["missing_match_ids"]


def write_output(objects_root: Path, domain, job: str, records: list[tuple[str, str]], name="part-00000.csv") -> str:
    """A match output folder as the service lays it out; returns its success/ URI."""
    uri = layout.success_uri(layout.job_folder(layout.output_prefix(domain), domain.workflow_name, job))
    folder = objects_root / uri[len("s3://") :]
    folder.mkdir(parents=True, exist_ok=True)
    header = ["InputSourceARN", "RecordId", "MatchID", "MatchRule", *domain.schema.columns]
    with open(folder / name, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header)
        for record_id, match_id in records:
            fields = {c: f"{c}-{record_id}" for c in domain.schema.columns}
            fields[domain.schema.unique_id] = record_id
            fields["last_name"] = "O'Brien, Jr."  # a quote and a comma survive the CSV round trip
            out.writerow(
                [
                    "arn:aws:glue:table/er/customers_input",
                    record_id,
                    match_id,
                    "email_match",
                    *(fields[c] for c in domain.schema.columns),
                ]
            )
    return uri


@pytest.fixture
def domain():
    return load_config().domain("customers")


@pytest.fixture
def objects(tmp_path):
    return tmp_path / "objects"


def rows_of(conn, table: str, partition: str) -> list[tuple]:
    cursor = conn.cursor()
    cursor.execute(
        f"SELECT RECORDID, MATCHID, LAST_NAME FROM {table} WHERE PARTITION_KEY = %(p)s ORDER BY 1", {"p": partition}
    )
    return cursor.fetchall()


# --- SQL that fakesnow cannot run: parsed and pinned ---------------------------------------


UNLOAD_SNAPSHOT = (
    "COPY INTO '@ER_STAGE/entity-resolution/customers/extract/partition=2024-03-05/run=r1/' FROM ("
    'SELECT TO_VARCHAR("CUSTOMER_ID") AS "customer_id", TO_VARCHAR("FIRST_NAME") AS "first_name", '
    'TO_VARCHAR("LAST_NAME") AS "last_name", TO_VARCHAR("EMAIL") AS "email", TO_VARCHAR("PHONE") AS "phone", '
    'TO_VARCHAR("ADDRESS") AS "address", TO_VARCHAR("CITY") AS "city", TO_VARCHAR("STATE") AS "state", '
    'TO_VARCHAR("POSTAL_CODE") AS "postal_code" FROM "CUSTOMERS_SOURCE" '
    'WHERE "LOAD_DATE" >= %(start)s AND "LOAD_DATE" < %(end)s) '
    "FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE MAX_FILE_SIZE = 268435456 INCLUDE_QUERY_ID = TRUE"
)


def test_unload_statement_snapshot_and_parse(domain):
    location = sf.stage_location(STAGE, f"s3://{BUCKET}/", layout.extract_uri(domain, PARTITION, "r1"))
    sql = sf.unload_sql(location, sf.extract_select(domain))
    assert sql == UNLOAD_SNAPSHOT

    # The Snowflake connector binds pyformat parameters client-side, as quoted literals.
    bound = sql % {"start": "'2024-03-05'", "end": "'2024-03-06'"}
    tree = sqlglot.parse_one(bound, read="snowflake")
    assert isinstance(tree, exp.Copy)
    assert tree.this.name == "@ER_STAGE/entity-resolution/customers/extract/partition=2024-03-05/run=r1/"
    query = tree.args["files"][0].this
    assert isinstance(query, exp.Select)
    assert [e.alias for e in query.expressions] == domain.schema.columns
    assert query.args["from_"].this.name == "CUSTOMERS_SOURCE"
    assert {p.this.name.upper() for p in tree.args["params"]} == {
        "FILE_FORMAT",
        "HEADER",
        "MAX_FILE_SIZE",
        "INCLUDE_QUERY_ID",
    }


def test_load_statement_snapshot_and_parse():
    location = sf.stage_location(STAGE, f"s3://{BUCKET}/", OUTPUT_URI)
    sql = sf.copy_staging_sql("CUSTOMERS_RESOLVED__LOAD_20240305", location)
    assert sql == (
        'COPY INTO "CUSTOMERS_RESOLVED__LOAD_20240305" FROM \'' + OUTPUT + "' "
        "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"') "
        "PATTERN = '(.*/)?[^/_.][^/]*' FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
    )
    tree = sqlglot.parse_one(sql, read="snowflake")
    assert isinstance(tree, exp.Copy)
    assert {p.this.name.upper() for p in tree.args["params"]} == {"FILE_FORMAT", "PATTERN", "FORCE", "ON_ERROR"}
    assert PATTERN_CLAUSE in sql  # the clause the fakesnow connection drops, exactly once
    assert sql.count("PATTERN") == 1


OUTPUT_URI = f"s3://{BUCKET}/entity-resolution/customers/output/customers-matching-workflow/j1/success/"
OUTPUT = "@ER_STAGE/entity-resolution/customers/output/customers-matching-workflow/j1/success/"
FIGURES_SNAPSHOT = (
    "WITH output_rows AS (SELECT m, TRUE AS own FROM (SELECT $3 AS m FROM "
    + OUTPUT
    + " (FILE_FORMAT => 'ER_MATCH_OUTPUT_CSV', PATTERN => '(.*/)?[^/_.][^/]*') WHERE METADATA$FILE_ROW_NUMBER > 1)), "
    "sizes AS (SELECT m, COUNT(*) AS n, COUNT_IF(own) AS own FROM output_rows GROUP BY m), "
    f"assigned AS (SELECT n, own, NOT {blank_sql('m')} AS assigned FROM sizes) "
    'SELECT COALESCE(SUM(own), 0) AS "records", COUNT_IF(assigned AND own > 0) AS "match_ids", '
    'COALESCE(SUM(CASE WHEN assigned AND n > 1 THEN own ELSE 0 END), 0) AS "matched" FROM assigned'
)


def test_match_figures_statements_snapshot_and_parse(domain):
    """The matched stage's counts run in Snowflake over the stage (fakesnow cannot query staged
    files): pinned, and parsed as Snowflake SQL reading the stage with the named format."""
    assert sf.output_figures_sql(OUTPUT, 3) == FIGURES_SNAPSHOT
    header = sf.output_header_sql(OUTPUT, 4)
    assert header == (
        "SELECT $1, $2, $3, $4 FROM " + OUTPUT + " (FILE_FORMAT => 'ER_MATCH_OUTPUT_CSV', "
        "PATTERN => '(.*/)?[^/_.][^/]*') WHERE METADATA$FILE_ROW_NUMBER = 1 LIMIT 1"
    )
    for sql in (FIGURES_SNAPSHOT, header, sf.output_rows_sql(OUTPUT.replace("/success/", "/error/"))):
        tree = sqlglot.parse_one(sql, read="snowflake")
        assert isinstance(tree, exp.Select)
        assert OUTPUT.split("/success/")[0] in tree.sql(dialect="snowflake")
    create = sqlglot.parse_one(sf.output_format_sql(), read="snowflake")
    assert isinstance(create, exp.Create) and create.args["kind"] == "FILE FORMAT"


CONFIDENCE_SNAPSHOT = (
    "WITH output_rows AS (SELECT $2 AS id, $3 AS m, TRY_TO_DOUBLE($4) AS c FROM "
    + OUTPUT
    + " (FILE_FORMAT => 'ER_MATCH_OUTPUT_CSV', PATTERN => '(.*/)?[^/_.][^/]*') WHERE METADATA$FILE_ROW_NUMBER > 1), "
    f"matched AS (SELECT * FROM output_rows WHERE NOT {blank_sql('m')} "
    "AND m IN (SELECT m FROM output_rows GROUP BY m HAVING COUNT(*) > 1)), "
    "samples AS (SELECT id FROM matched WHERE c < %(threshold)s OR c IS NULL ORDER BY id LIMIT 5) "
    "SELECT COUNT(*), COUNT(c), COUNT_IF(c < %(threshold)s), COUNT_IF(c < 0 OR c > 1), AVG(c), MIN(c), "
    "(SELECT ARRAY_AGG(id) WITHIN GROUP (ORDER BY id) FROM samples) FROM matched"
)


EXTRACT = "@ER_STAGE/entity-resolution/customers/extract/partition=2024-03-05/run=r1/"
CONTEXT_PATTERN = "(.*/)?context_[^/]*[.]parquet"
CONTEXT_IDS_SNAPSHOT = (
    'SELECT DISTINCT id FROM (SELECT $1:"customer_id"::VARCHAR AS id FROM '
    + EXTRACT
    + f" (FILE_FORMAT => 'ER_EXTRACT_PARQUET', PATTERN => '{CONTEXT_PATTERN}')) WHERE id IS NOT NULL"
)


def test_context_unload_statement_snapshot_and_parse(domain):
    """The context records unload beside the slice under the `context_` file name prefix, with
    the slice's column names and types (the Glue table reads both as one); Snowflake names the
    files it writes there as CONTEXT_FILE_PATTERN and DATA_FILE_PATTERN both match."""
    location = sf.stage_location(STAGE, f"s3://{BUCKET}/", layout.extract_uri(domain, PARTITION, "r1"))
    assert location == EXTRACT and layout.CONTEXT_FILE_PATTERN == CONTEXT_PATTERN
    sql = sf.unload_sql(location + sf.CONTEXT_PREFIX, sf.context_select(domain))
    columns = ", ".join(f'TO_VARCHAR("{c.upper()}") AS "{c}"' for c in domain.schema.columns)
    assert sql.startswith(f"COPY INTO '{EXTRACT}context_' FROM (SELECT {columns} FROM (\nWITH new_keys AS (")
    assert sql.endswith(
        ") FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE MAX_FILE_SIZE = 268435456 INCLUDE_QUERY_ID = TRUE"
    )
    tree = sqlglot.parse_one(sql % {"start": "'2024-03-05'", "end": "'2024-03-06'"}, read="snowflake")
    assert isinstance(tree, exp.Copy)
    assert tree.this.name == EXTRACT + "context_"
    query = tree.args["files"][0].this
    assert [e.alias for e in query.expressions] == domain.schema.columns
    read = {t.name for t in tree.find_all(exp.Table)}
    assert {
        "CUSTOMERS_SOURCE",
        "CUSTOMERS_RESOLVED",
        "CUSTOMERS_RESOLVED_ENTITY_KEYS",
        "CUSTOMERS_RESOLVED_ENTITY_MEMBERS",
    } <= read
    # Snowflake's names: the prefix, then (INCLUDE_QUERY_ID) the query's UUID, then the part.
    folder = EXTRACT.split("/", 1)[1]
    for name in ("context_0_0_0.snappy.parquet", "context_01b2c3d4-0602-a1b2-0000-0004a2c6d0e1_0_1_0.snappy.parquet"):
        assert re.fullmatch(layout.CONTEXT_FILE_PATTERN, folder + name) and layout.is_data_file(folder + name)
    assert not re.fullmatch(layout.CONTEXT_FILE_PATTERN, folder + "data_01b2c3d4-0602_0_0_0.snappy.parquet")


def test_context_id_statements_snapshot_and_parse(domain):
    """The load's context ids and the matched stage's own counts read the extract's context
    parquet over the stage (fakesnow cannot): pinned, and parsed as Snowflake SQL."""
    assert sf.context_ids_select(EXTRACT, "customer_id") == CONTEXT_IDS_SNAPSHOT
    fill = sf.fill_context_sql("CUSTOMERS_RESOLVED__LOAD_20240305_ab12cd34_CONTEXT", EXTRACT, "customer_id")
    assert fill == (
        'INSERT INTO "CUSTOMERS_RESOLVED__LOAD_20240305_AB12CD34_CONTEXT" (RECORD_ID) ' + CONTEXT_IDS_SNAPSHOT
    )
    tree = sqlglot.parse_one(fill, read="snowflake")
    assert isinstance(tree, exp.Insert)
    assert "GET_PATH($1, 'customer_id')" in tree.sql(dialect="snowflake")  # the parquet column, by its name
    own = sf.output_figures_sql(OUTPUT, 3, 2, EXTRACT, "customer_id")
    assert own == (
        "WITH output_rows AS (SELECT m, own_row AS own FROM (SELECT o.m, c.id IS NULL AS own_row FROM "
        "(SELECT $3 AS m, $2 AS id FROM " + OUTPUT + " (FILE_FORMAT => 'ER_MATCH_OUTPUT_CSV', "
        "PATTERN => '(.*/)?[^/_.][^/]*') WHERE METADATA$FILE_ROW_NUMBER > 1) o "
        f"LEFT JOIN ({CONTEXT_IDS_SNAPSHOT}) c ON c.id = o.id)), "
        "sizes AS (SELECT m, COUNT(*) AS n, COUNT_IF(own) AS own FROM output_rows GROUP BY m), "
        f"assigned AS (SELECT n, own, NOT {blank_sql('m')} AS assigned FROM sizes) "
        'SELECT COALESCE(SUM(own), 0) AS "records", COUNT_IF(assigned AND own > 0) AS "match_ids", '
        'COALESCE(SUM(CASE WHEN assigned AND n > 1 THEN own ELSE 0 END), 0) AS "matched" FROM assigned'
    )
    assert isinstance(sqlglot.parse_one(own, read="snowflake"), exp.Select)
    for ddl, kind in (
        (sf.parquet_format_sql(), exp.Create),
        (sf.add_entity_column_sql("customers_resolved"), exp.Alter),
    ):
        assert isinstance(sqlglot.parse_one(ddl, read="snowflake"), kind)
    with pytest.raises(sf.UnsafeIdentifier):
        sf.context_ids_select(EXTRACT, 'id"; DROP TABLE x; --')


def _registry_statements(domain) -> list[str]:
    """Every statement the registry sends Snowflake in a load (and the extract's context query)."""
    dialect, table, part = sf.SNOWFLAKE, domain.target.table, sf.PARTITION_COLUMN
    staged, context = 'SELECT * FROM "STAGED"', 'SELECT RECORD_ID AS record_id FROM "STAGED_CONTEXT"'
    return [
        *registry.create_sql(dialect, domain),
        registry.lock_sql(dialect, domain),
        *registry._groups_sql(dialect, domain, staged, context, table, part),
        *registry._undo_sql(dialect, domain),
        registry._assign_sql(dialect, domain),
        *registry._step_sql(dialect, domain),
        *registry._target_sql(dialect, domain, table, part),
        *registry.figures_sql(dialect, domain, table, part).values(),
        sf.context_select(domain),
    ]


def _bound(sql: str) -> str:
    """As the connector sends it: pyformat parameters bound client-side, as quoted literals."""
    return re.sub(r"%\((\w+)\)s", r"'\1'", sql)


def test_registry_statements_bind_and_parse_as_snowflake_sql(domain):
    """The registry's statements, rendered for Snowflake: no `%` but the bound parameters (the
    connector formats the text with Python's %), every identifier upper-cased and quoted, and
    each parses as Snowflake SQL (fakesnow runs them, in test_registry_snowflake.py)."""
    for sql in _registry_statements(domain):
        assert "%" not in re.sub(r"%\(\w+\)s", "", sql), sql
        tree = sqlglot.parse_one(_bound(sql), read="snowflake")
        ctes = {c.alias for c in tree.find_all(exp.CTE)}
        assert all(t.name == t.name.upper() for t in tree.find_all(exp.Table) if t.name not in ctes), sql


def test_registry_statements_use_only_subqueries_snowflake_supports(domain):
    """Snowflake ("Subquery operators"): correlated EXISTS and IN subqueries are supported only
    in a WHERE clause. fakesnow (DuckDB) runs the others, so this is checked on the parse."""
    misplaced = []
    for sql in _registry_statements(domain):
        for node in sqlglot.parse_one(_bound(sql), read="snowflake").find_all(exp.Exists, exp.In):
            query = node.find(exp.Select) if isinstance(node, exp.Exists) else node.args.get("query")
            if query is None or node.find_ancestor(exp.Where) is not None:
                continue
            inner = {t.alias_or_name for t in query.find_all(exp.Table)} | {c.alias for c in query.find_all(exp.CTE)}
            if {c.table for c in query.find_all(exp.Column) if c.table} - inner:
                misplaced.append(node.sql(dialect="snowflake"))
    assert misplaced == []


def test_confidence_statement_snapshot_and_parse():
    """An ML output's ConfidenceLevel figures are counted over the stage too, columns found by
    the header's positions: pinned, and parsed as Snowflake SQL."""
    header = ["InputSourceARN", "RecordId", "MatchID", "ConfidenceLevel", "customer_id"]
    sql = sf.output_confidence_sql(OUTPUT, header)
    assert sql == CONFIDENCE_SNAPSHOT
    tree = sqlglot.parse_one(sql % {"threshold": "0.7"}, read="snowflake")
    assert isinstance(tree, exp.Select)
    assert [type(e).__name__ for e in tree.expressions] == [
        "Count",
        "Count",
        "CountIf",
        "CountIf",
        "Avg",
        "Min",
        "Subquery",
    ]
    ctes = {c.alias: c.this for c in tree.args["with_"].expressions}
    assert list(ctes) == ["output_rows", "matched", "samples"]
    assert ctes["samples"].args["limit"].expression.name == str(SAMPLE_IDS)


def test_ml_confidence_figures_are_counted_in_the_warehouse(objects):
    """The matched stage of an ML domain takes ConfidenceLevel from the warehouse's bulk work:
    nothing of the output is read through the object store (S3 has no local copy)."""
    from er_assets.resources.object_store import bytes_read

    config = load_config(ML_EXAMPLE)
    ml = config.domain("customers_ml")
    uri = write_output(objects, ml, "j1", [("C1", "m1"), ("C2", "m1"), ("C3", "m2")])
    path = objects / uri.removeprefix("s3://") / "part-00000.csv"
    rows = list(csv.reader(path.open(newline="")))
    rows[0][rows[0].index("MatchRule")] = "ConfidenceLevel"
    for row, level in zip(rows[1:], ["0.9", "0.6", ""]):
        row[3] = level
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with fake_snowflake(objects):
        before = bytes_read()
        figures = warehouse(objects).match_output_figures(ml, uri, uri.replace("/success/", "/error/"))
        assert bytes_read() == before
    assert figures["confidence"] == {
        "present": True,
        "matched_records": 2,
        "with_confidence": 2,
        "below_threshold": 1,
        "out_of_range": 0,
        "mean": 0.75,
        "min": 0.6,
        "sample_ids": ["C2"],
    }
    with fake_snowflake(objects):
        rule_based = warehouse(objects).match_output_figures(
            load_config().domain("customers"), uri, uri.replace("/success/", "/error/")
        )
    assert rule_based["confidence"] is None


def test_match_figures_come_from_the_stage_not_through_the_object_store(domain, objects):
    from er_assets.resources.object_store import bytes_read

    uri = write_output(objects, domain, "j1", [("C1", "m1"), ("C2", "m1"), ("C3", "m2")])
    write_output(objects, domain, "j1", [("C4", "m3"), ("C5", "m3")], name="part-00001.csv")
    error_uri = uri.replace("/success/", "/error/")
    with fake_snowflake(objects):
        before = bytes_read()
        figures = warehouse(objects).match_output_figures(domain, uri, error_uri)
        assert bytes_read() == before
    assert figures == {
        "records": 5,
        "match_ids": 3,
        "matched_records": 4,
        "match_rate": 80.0,
        "rejected_rows": 0,
        "confidence": None,
    }


def test_identifiers_with_quotes_or_semicolons_are_rejected(domain, objects):
    for bad in ['cust"omers', "customers; DROP TABLE x", "a b", "", "x--"]:
        with pytest.raises(sf.UnsafeIdentifier):
            sf.ident(bad)
    for bad in ["ER_STAGE; DROP", 'ER."STAGE"', "a.b.c.d", "@stage"]:
        with pytest.raises(sf.UnsafeIdentifier):
            sf.object_name(bad)
    with pytest.raises(sf.UnsafeIdentifier):
        sf.stage_location(STAGE, f"s3://{BUCKET}/", f"s3://{BUCKET}/x/it's/")
    with pytest.raises(ValueError, match="not under"):
        sf.stage_location(STAGE, f"s3://{BUCKET}/", "s3://other-bucket/x/")

    # A match output whose header smuggles SQL is refused before any statement runs.
    uri = write_output(objects, domain, "bad", [("C1", "m1")])
    path = objects / uri[len("s3://") :] / "part-00000.csv"
    text = path.read_text().replace("MatchRule", 'MatchRule" VARCHAR); DROP TABLE t; --', 1)
    path.write_text(text)
    with fake_snowflake(objects) as conn:
        with pytest.raises(sf.UnsafeIdentifier):
            warehouse(objects).load_matches(domain, PARTITION, uri, accept_all)
        cursor = conn.cursor()
        cursor.execute(sf.TABLE_EXISTS_SQL, {"name": "CUSTOMERS_RESOLVED"})
        assert cursor.fetchone()[0] == 0


# --- SQL that fakesnow runs ---------------------------------------------------------------


def test_load_twice_leaves_one_copy_of_the_partition(domain, objects):
    first = write_output(objects, domain, "job1", [("C1", "m1"), ("C2", "m1"), ("C3", "m3")])
    other = write_output(objects, domain, "job0", [("C9", "m9")])
    with fake_snowflake(objects) as conn:
        wh = warehouse(objects)
        assert wh.load_matches(domain, "2024-03-04", other, accept_all).rows == 1
        result = wh.load_matches(domain, PARTITION, first, accept_all)
        assert (result.rows, result.table) == (3, "customers_resolved")
        expected = [("C1", "m1", "O'Brien, Jr."), ("C2", "m1", "O'Brien, Jr."), ("C3", "m3", "O'Brien, Jr.")]
        assert rows_of(conn, "customers_resolved", PARTITION) == expected

        again = wh.load_matches(domain, PARTITION, first, accept_all)
        assert again.rows == 3
        assert rows_of(conn, "customers_resolved", PARTITION) == expected
        assert [r[0] for r in rows_of(conn, "customers_resolved", "2024-03-04")] == ["C9"]  # untouched

        # The staging and context-id tables are gone, the registry's stay; the target has the
        # output's columns plus the load's three.
        cursor = conn.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'PUBLIC'")
        registry_tables = [
            f"CUSTOMERS_RESOLVED_ENTITY_{t}" for t in ("EVENTS", "GROUPS", "KEYS", "LOCK", "MEMBERS", "PLAN")
        ]
        assert sorted(r[0].upper() for r in cursor.fetchall()) == ["CUSTOMERS_RESOLVED", *registry_tables]
        cursor.execute(sf.COLUMNS_SQL, {"name": "CUSTOMERS_RESOLVED"})
        columns = {r[0].upper() for r in cursor.fetchall()}
        assert {
            "INPUTSOURCEARN",
            "RECORDID",
            "MATCHID",
            "MATCHRULE",
            "CUSTOMER_ID",
            "PARTITION_KEY",
            "LOADED_AT",
            "ENTITY_ID",
        } <= columns


def test_load_in_several_files_counts_rows_from_copy(domain, objects):
    uri = write_output(objects, domain, "job2", [("C1", "m1"), ("C2", "m1")], name="part-00000.csv")
    write_output(objects, domain, "job2", [("C3", "m3")], name="part-00001.csv")
    with fake_snowflake(objects):
        assert warehouse(objects).load_matches(domain, PARTITION, uri, accept_all).rows == 3


def test_failure_halfway_through_rolls_back(domain, objects, monkeypatch):
    good = write_output(objects, domain, "job1", [("C1", "m1"), ("C2", "m2")])
    newer = write_output(objects, domain, "job2", [("C1", "m1"), ("C2", "m1"), ("C3", "m1")])
    with fake_snowflake(objects) as conn:
        wh = warehouse(objects)
        wh.load_matches(domain, PARTITION, good, accept_all)
        before = rows_of(conn, "customers_resolved", PARTITION)

        # The INSERT fails after the DELETE has run inside the transaction.
        executed = []
        real_insert = sf.insert_sql
        monkeypatch.setattr(
            sf, "insert_sql", lambda *a: executed.append("insert") or real_insert(*a) + " WHERE NO_SUCH_COLUMN = 1"
        )
        real_delete = sf.delete_partition_sql
        monkeypatch.setattr(sf, "delete_partition_sql", lambda *a: executed.append("delete") or real_delete(*a))
        with pytest.raises(Exception, match=r"(?i)no_such_column"):
            wh.load_matches(domain, PARTITION, newer, accept_all)
        assert executed == ["delete", "insert"]
        assert rows_of(conn, "customers_resolved", PARTITION) == before

        # A malformed output file fails the COPY itself; nothing changes either.
        monkeypatch.undo()
        broken = write_output(objects, domain, "job3", [("C7", "m7")])
        with open(objects / broken[len("s3://") :] / "part-00000.csv", "a") as handle:
            handle.write("too,few,fields\n")
        with pytest.raises(Exception, match=r"(?i)csv"):
            wh.load_matches(domain, PARTITION, broken, accept_all)
        assert rows_of(conn, "customers_resolved", PARTITION) == before
        assert wh.load_matches(domain, PARTITION, newer, accept_all).rows == 3


def test_missing_empty_or_unreadable_output_is_refused_and_the_partition_untouched(domain, objects):
    good = write_output(objects, domain, "job1", [("C1", "m1"), ("C2", "m1")])
    missing = layout.success_uri(layout.job_folder(layout.output_prefix(domain), domain.workflow_name, "gone"))
    header_only = write_output(objects, domain, "job2", [])
    truncated = write_output(objects, domain, "job3", [("C1", "m1"), ("C2", "m2")])
    path = objects / truncated[len("s3://") :] / "part-00000.csv"
    path.write_text(path.read_text()[:-40])  # cut inside the last record
    with fake_snowflake(objects) as conn:
        wh = warehouse(objects)
        wh.load_matches(domain, PARTITION, good, accept_all)
        before = rows_of(conn, "customers_resolved", PARTITION)
        # Snowflake copies 0 rows from a header-only file; fakesnow fails that COPY instead.
        for uri, why in [
            (missing, "has no data files"),
            (header_only, "(has no rows|cannot be read)"),
            (truncated, "cannot be read"),
        ]:
            untouched = f"{why}.*partition {PARTITION} of customers_resolved left untouched"
            with pytest.raises(UpstreamRefused, match=untouched):
                wh.load_matches(domain, PARTITION, uri, accept_all)
            assert rows_of(conn, "customers_resolved", PARTITION) == before


def test_output_the_checks_reject_is_staged_measured_and_never_swapped_in(domain, objects):
    good = write_output(objects, domain, "job1", [("C1", "m1"), ("C2", "m1")])
    worse = write_output(objects, domain, "job2", [("C1", "m1"), ("C1", "m1"), ("C3", "")])
    seen = []
    with fake_snowflake(objects) as conn:
        wh = warehouse(objects)
        wh.load_matches(domain, PARTITION, good, accept_all)
        before = rows_of(conn, "customers_resolved", PARTITION)
        result = wh.load_matches(domain, PARTITION, worse, lambda figures: seen.append(figures) or False)
        assert not result.replaced
        assert counts(seen[0]) == (3, 1, 1) and seen[0]["match_ids"] == 1  # an empty MatchID is none
        assert seen[0]["sample_ids"] == {"duplicate_ids": ["C1"], "missing_match_ids": ["C3"]}
        assert rows_of(conn, "customers_resolved", PARTITION) == before
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE '%\\_\\_LOAD\\_%'")
        assert cursor.fetchone()[0] == 0  # no staging table left behind


def test_blank_match_ids_are_none_in_the_matched_and_the_loaded_figures(domain, objects, tmp_path):
    """The matched stage and the load count MatchIDs alike, a blank one (empty, white space,
    zero-width) being none: row_count compares the two and must not fail on such rows."""
    from er_assets.pipeline import checks
    from er_assets.resources.warehouses.local import DuckDBWarehouse, match_counts

    uri = write_output(
        objects, domain, "job1", [("C1", "m1"), ("C2", "m1"), ("C3", ""), ("C4", " "), ("C5", "\u200b"), ("C6", "")]
    )
    records, match_ids, matched = match_counts(objects / uri.removeprefix("s3://"))
    assert (records, match_ids, matched) == (6, 1, 2)
    seen = []
    with fake_snowflake(objects):
        warehouse(objects).load_matches(domain, PARTITION, uri, lambda figures: seen.append(figures) or False)
    local = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"), objects_root=str(objects))
    local.load_matches(domain, PARTITION, uri, lambda figures: seen.append(figures) or False)
    for figures in seen:
        assert (figures["match_ids"], figures["missing_match_ids"]) == (1, 4)
        row_count = checks.loaded_results(domain, records, records, figures, match_ids)[0]
        assert row_count.passed, row_count.description


def test_target_missing_an_output_column_is_explained(domain, objects):
    uri = write_output(objects, domain, "job1", [("C1", "m1")])
    with fake_snowflake(objects) as conn:
        conn.cursor().execute('CREATE TABLE "CUSTOMERS_RESOLVED" ("RECORDID" VARCHAR, "PARTITION_KEY" VARCHAR)')
        with pytest.raises(ValueError, match=r"lacks match output columns .*MatchID"):
            warehouse(objects).load_matches(domain, PARTITION, uri, accept_all)


def test_extract_profile_and_files(domain, objects):
    day = dt.date(2024, 3, 5)
    base = {
        **{c: "x" for c in domain.schema.columns},
        "email": "ann@example.com",
        "phone": "+1 (555) 010-7788",
        "postal_code": "02139",
    }
    rows = [
        {**base, "customer_id": "C1", "load_date": day},
        {**base, "customer_id": "C1", "load_date": day},  # duplicate id
        {**base, "customer_id": " ", "load_date": day},  # empty id
        {**base, "customer_id": "C" * 39, "load_date": day},  # too long for rule-based matching
        {**base, "customer_id": "C5", "last_name": None, "load_date": day},
        {**base, "customer_id": "C6", "load_date": dt.date(2024, 3, 6)},  # next partition
        {**base, "customer_id": "C7", "email": "ann at example", "phone": None, "load_date": day},
    ]
    # Left by an earlier attempt of the same run (a retried step) with more parts than this one.
    stale = (
        objects
        / BUCKET
        / "entity-resolution/customers/extract/partition=2024-03-05/run=r1"
        / "data_9_9_9.snappy.parquet"
    )
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a larger earlier run")
    with fake_snowflake(objects) as conn:
        create_source(conn, domain, rows)
        result = warehouse(objects).unload_extract(
            domain, day, day + dt.timedelta(days=1), layout.extract_uri(domain, PARTITION, "r1")
        )
    assert result.profile == {
        "rows": 6,
        "empty_ids": 1,
        "duplicate_ids": 1,
        "long_ids": 1,
        "null_counts": {"customer_id": 1, "last_name": 1},
        "non_empty": {**dict.fromkeys(domain.schema.columns, 6), "customer_id": 5, "last_name": 5, "phone": 5},
        "formats": {
            "email": {"type": "EMAIL_ADDRESS", "values": 6, "invalid": 1, "sample_ids": ["C7"]},
            "phone": {"type": "PHONE_NUMBER", "values": 5, "invalid": 0, "sample_ids": []},
            "postal_code": {"type": "ADDRESS_POSTALCODE", "values": 6, "invalid": 0, "sample_ids": []},
        },
        "sample_ids": {
            "duplicate_ids": ["C1"],
            "long_ids": ["C" * 39],
            "required_fields": {"customer_id": [], "last_name": ["C5"]},
        },
    }
    assert result.rows == 6
    assert result.files == [layout.extract_uri(domain, PARTITION, "r1") + "data_0_0_0.snappy.parquet"]
    written = pq.read_table(
        objects
        / BUCKET
        / "entity-resolution/customers/extract/partition=2024-03-05/run=r1"
        / "data_0_0_0.snappy.parquet"
    )
    assert written.column_names == domain.schema.columns


def test_check_ready_names_what_is_missing(domain, objects):
    with fake_snowflake(objects, stage_url="s3://somewhere-else/"):
        problems = warehouse(objects).check_ready(domain)
    assert any("source table CUSTOMERS_SOURCE does not exist" in p for p in problems)
    assert any("points at s3://somewhere-else/" in p for p in problems)

    with fake_snowflake(objects, stage_url=f"s3://{BUCKET}/") as conn:
        create_source(conn, domain, [])
        assert warehouse(objects).check_ready(domain) == []
        wrong = warehouse(objects).model_copy(update={"stage": "NO_SUCH_STAGE"})
        assert wrong.check_ready(domain) == [
            "stage NO_SUCH_STAGE does not exist in ER.PUBLIC or is not visible to the role"
        ]


def test_source_schema_problems_name_missing_and_unusable_columns(domain, objects):
    with fake_snowflake(objects) as conn:
        assert list(warehouse(objects).source_schema_problems(domain)) == ["customers_source"]
        cursor = conn.cursor()
        cursor.execute(
            'CREATE TABLE "CUSTOMERS_SOURCE" ("CUSTOMER_ID" NUMBER, "FIRST_NAME" VARCHAR, "LAST_NAME" VARCHAR, '
            '"PHONE" VARIANT, "ADDRESS" VARCHAR, "CITY" VARCHAR, "STATE" VARCHAR, "POSTAL_CODE" VARCHAR, '
            '"LOAD_DATE" VARCHAR)'
        )
        assert warehouse(objects).source_schema_problems(domain) == {
            "email": "missing",
            "phone": "type VARIANT cannot be extracted as text",
            "load_date": "type TEXT is not a DATE or TIMESTAMP",
        }


def profiles_in_both_warehouses(domain, objects, tmp_path, records: int, edit) -> tuple[dict, dict]:
    """The extract profile of one seeded slice, changed by `edit(duckdb_connection)`, from the
    DuckDB warehouse and from the Snowflake warehouse's SQL (through fakesnow)."""
    import duckdb

    from er_assets.ops.sample_data import seed_source
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    day = dt.date(2024, 3, 5)
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    seed_source(con, domain, day, day + dt.timedelta(days=1), records)
    edit(con)
    cursor = con.execute("SELECT * FROM customers_source")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    con.close()

    local = DuckDBWarehouse(path=str(path), objects_root=str(tmp_path / "local"))
    duckdb_profile = local.unload_extract(
        domain, day, day + dt.timedelta(days=1), layout.extract_uri(domain, PARTITION, "r1")
    ).profile
    with fake_snowflake(objects) as conn:
        create_source(conn, domain, rows)
        snowflake_profile = (
            warehouse(objects)
            .unload_extract(domain, day, day + dt.timedelta(days=1), layout.extract_uri(domain, PARTITION, "r1"))
            .profile
        )
    return duckdb_profile, snowflake_profile


def test_profile_agrees_with_the_duckdb_warehouse(domain, objects, tmp_path):
    """The same slice, defects included, profiles identically in both warehouses' SQL."""

    def defects(con):
        con.execute(
            "UPDATE customers_source SET email = 'nope', phone = 'call me', postal_code = '1' "
            "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY 1 LIMIT 7)"
        )
        con.execute(
            "UPDATE customers_source SET last_name = NULL, customer_id = 'C1' "
            "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY 1 DESC LIMIT 3)"
        )

    expected, profile = profiles_in_both_warehouses(domain, objects, tmp_path, 200, defects)
    assert profile == expected
    assert profile["formats"]["email"]["invalid"] == 7 and profile["duplicate_ids"] == 2


BLANKS = ["\t", "\n", "\r\n", "\u00a0", "\u200b", "\u3000", " \u2007\ufeff ", "\u2028"]


def test_blank_means_blank_in_every_script_in_both_warehouses(domain, objects, tmp_path):
    """Ids and required values of only Unicode white space or zero-width characters are empty
    to required_fields and unique_ids, in the DuckDB and the Snowflake SQL alike; a name in
    any script, even with a zero-width joiner inside, is not."""
    # Arabic, Hebrew, Vietnamese, Persian with ZWNJ, Chinese
    names = ["سارة", "כהן", "Ngô", "میر\u200cزاده", "王"]

    def blanks_and_names(con):
        ids = [r[0] for r in con.execute("SELECT customer_id FROM customers_source ORDER BY 1").fetchall()]
        for blank, record_id in zip(BLANKS, ids):
            con.execute(
                "UPDATE customers_source SET customer_id = ?, last_name = ? WHERE customer_id = ?",
                [blank, blank, record_id],
            )
        for name, record_id in zip(names, ids[len(BLANKS) :]):
            con.execute("UPDATE customers_source SET last_name = ? WHERE customer_id = ?", [name, record_id])

    expected, profile = profiles_in_both_warehouses(domain, objects, tmp_path, 40, blanks_and_names)
    for found in (expected, profile):
        assert found["empty_ids"] == len(BLANKS), found
        assert found["null_counts"] == {"customer_id": len(BLANKS), "last_name": len(BLANKS)}, found
    assert profile == expected


def test_non_empty_counts_of_the_staged_rows_agree_in_both_warehouses(domain, objects, tmp_path):
    """What no_value_loss compares with the extract, before the swap: non-empty values per
    field of the staged match output, a zero-width space counting as empty, in the Snowflake
    and the DuckDB SQL."""
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    uri = write_output(objects, domain, "job1", [("C1", "m1"), ("C2", "m1"), ("C3", "m3")])
    file = objects / uri.removeprefix("s3://") / "part-00000.csv"
    rows = list(csv.reader(file.open(newline="")))
    rows[2][rows[0].index("last_name")] = "\u200b"  # C2's last name: blank in any script
    with file.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    expected = {**dict.fromkeys(domain.schema.columns, 3), "last_name": 2}
    # An output without the city column: city counts 0 in both, for no_value_loss to refuse.
    lacking = write_output(objects, domain, "job2", [("C1", "m1"), ("C2", "m2")])
    file = objects / lacking.removeprefix("s3://") / "part-00000.csv"
    rows = list(csv.reader(file.open(newline="")))
    city = rows[0].index("city")
    with file.open("w", newline="") as handle:
        csv.writer(handle).writerows(row[:city] + row[city + 1 :] for row in rows)
    expected_lacking = {**dict.fromkeys(domain.schema.columns, 2), "city": 0}
    for output, want in ((uri, expected), (lacking, expected_lacking)):
        seen = []
        with fake_snowflake(objects):
            warehouse(objects).load_matches(
                domain, PARTITION, output, lambda figures, seen=seen: seen.append(figures) or False
            )
        local = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"), objects_root=str(objects))
        local.load_matches(domain, PARTITION, output, lambda figures, seen=seen: seen.append(figures) or False)
        assert [figures["non_empty"] for figures in seen] == [want, want]


def test_the_slice_fingerprint_matches_the_extract_and_follows_the_data(domain, objects):
    day = dt.date(2024, 3, 5)
    base = {c: "x" for c in domain.schema.columns}
    rows = [{**base, "customer_id": f"C{i}", "load_date": day} for i in range(5)]
    with fake_snowflake(objects) as conn:
        create_source(conn, domain, rows)
        wh = warehouse(objects)
        result = wh.unload_extract(domain, day, day + dt.timedelta(days=1), layout.extract_uri(domain, PARTITION, "r1"))
        assert wh.slice_fingerprint(domain, day, day + dt.timedelta(days=1)) == (5, result.fingerprint)
        conn.cursor().execute("UPDATE CUSTOMERS_SOURCE SET CITY = 'y' WHERE CUSTOMER_ID = 'C3'")
        rows_now, changed = wh.slice_fingerprint(domain, day, day + dt.timedelta(days=1))
    assert rows_now == 5 and changed != result.fingerprint
