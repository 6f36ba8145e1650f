"""Each measuring query is written once (er_assets/resources/warehouses/queries.py) and rendered
for DuckDB and for Snowflake: every one runs here on DuckDB and on fakesnow over the same
hostile rows, and the figures must agree. fakesnow runs Snowflake's SQL through its own
translation onto DuckDB, so a fragment of the wrong dialect (a DuckDB-only function, a
placeholder style) fails here rather than in production."""

from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from er_assets.config import load_config
from er_assets.resources.warehouses import local, queries, snowflake
from er_assets.resources.warehouses.base import (
    assemble_profile,
    confidence_figures,
    named_row,
    schema_problems,
    target_figures,
)
from er_assets.resources.warehouses.local import DUCKDB
from er_assets.resources.warehouses.snowflake import SNOWFLAKE

NOT_TEXT = {DUCKDB: local.NOT_TEXT_TYPES, SNOWFLAKE: snowflake.NOT_TEXT_TYPES}

DAY = dt.date(2024, 3, 5)
BLANKS = ["", " ", "\t", "\u00a0", "\u200b", "\u3000 \ufeff"]


@pytest.fixture(scope="module")
def domain():
    # customers, with a format rule on postal codes, so the profile binds a pattern too.
    config = load_config()
    customers = config.domain("customers")
    return customers.model_copy(
        update={
            "dq": customers.dq.model_copy(
                update={"value_formats": {**customers.dq.value_formats, "ADDRESS_POSTALCODE": "[0-9]{5}(-[0-9]{4})?"}}
            )
        }
    )


def source_rows(domain) -> list[dict]:
    """Forty records with every defect the profile counts: blank and duplicate ids, ids too
    long, blank required values in several scripts' white space, bad formats, names in
    other scripts, NULLs."""
    rows = []
    for i in range(40):
        row = {c: f"{c}-{i}" for c in domain.schema.columns}
        row.update(
            customer_id=f"C{i:03d}",
            email=f"p{i}@example.com",
            postal_code=f"{10000 + i}",
            phone="+1 212 555 0100",
            load_date=DAY,
        )
        rows.append(row)
    for row, blank in zip(rows, BLANKS):
        row["customer_id"], row["last_name"] = blank, blank
    rows[10]["customer_id"] = rows[11]["customer_id"] = rows[12]["customer_id"] = "DUP"
    rows[13]["customer_id"] = "L" * 39
    rows[14].update(email="not an email", postal_code="1234", phone="call me")
    rows[15].update(email=None, postal_code=None, last_name=None, city=None)
    rows[16].update(last_name="میر\u200cزاده", first_name="王")
    rows[17].update(postal_code="123456")  # holds a postal code, is none: patterns match whole values
    rows.append({**rows[20], "customer_id": "OUTSIDE", "load_date": DAY + dt.timedelta(days=1)})
    return rows


def match_rows(domain) -> list[dict]:
    """Match output rows: duplicate record ids, blank and missing MatchIDs, a group of one,
    confidence levels in and out of range and unparseable."""
    levels = ["0.9", "0.95", "0.4", "", "1.5", "x", "0.8", "-0.1", "0.7", None]
    match_ids = ["m1", "m1", "m2", "m2", "m2", "\u200b", None, "m3", "m4", "m4"]
    rows = []
    for i, (match_id, level) in enumerate(zip(match_ids, levels)):
        row = {c: f"{c}-{i}" for c in domain.schema.columns}
        row.update(RecordId=f"R{i}", MatchID=match_id, ConfidenceLevel=level, customer_id=f"R{i}")
        rows.append(row)
    rows[1]["customer_id"] = rows[2]["customer_id"] = "R0"
    rows[3]["last_name"] = "\u3000"
    return rows


@contextmanager
def both(tmp_path: Path, table: str, rows: list[dict], columns: list[str], types: dict | None = None):
    """The same rows in a DuckDB table `table` and in a fakesnow table of Snowflake's upper-case
    names (`types`: column -> type, or (DuckDB's, Snowflake's)); yields a `run(sql, params,
    many)` for each engine."""
    import fakesnow
    import snowflake.connector

    types = {c: kind if isinstance(kind, tuple) else (kind, kind) for c, kind in (types or {}).items()}
    con = duckdb.connect()
    body = ", ".join(f"{DUCKDB.ident(c)} {types.get(c, ('VARCHAR',) * 2)[0]}" for c in columns)
    con.execute(f"CREATE TABLE {DUCKDB.ident(table)} ({body})")
    if rows:
        con.executemany(
            f"INSERT INTO {DUCKDB.ident(table)} VALUES ({', '.join('?' for _ in columns)})",
            [[r.get(c) for c in columns] for r in rows],
        )
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="ER", schema="PUBLIC")
        cursor = conn.cursor()
        body = ", ".join(f"{SNOWFLAKE.ident(c)} {types.get(c, ('VARCHAR',) * 2)[1]}" for c in columns)
        cursor.execute(f"CREATE TABLE {SNOWFLAKE.ident(table)} ({body})")
        if rows:
            values = ", ".join(f"%({c})s" for c in columns)
            cursor.executemany(
                f"INSERT INTO {SNOWFLAKE.ident(table)} VALUES ({values})",
                [{c: r.get(c) for c in columns} for r in rows],
            )

        def fetched(result, many: bool, named: bool):
            return result.fetchall() if many else named_row(result) if named else result.fetchone()

        def run_duckdb(sql, params=None, many=False, named=False):
            return fetched(con.execute(sql, params or {}), many, named)

        def run_snowflake(sql, params=None, many=False, named=False):
            cursor.execute(sql, params or {})
            return fetched(cursor, many, named)

        yield {DUCKDB: run_duckdb, SNOWFLAKE: run_snowflake}
        conn.close()
    con.close()


def slice_of(dialect, domain) -> str:
    part = dialect.ident(domain.source.partition_column)
    end = DAY + dt.timedelta(days=1)
    return f"SELECT * FROM {dialect.ident(domain.source.table)} WHERE {part} >= DATE '{DAY}' AND {part} < DATE '{end}'"


def test_the_extract_profile_agrees_on_both_engines(domain, tmp_path):
    columns = [*domain.schema.columns, domain.source.partition_column]
    with both(tmp_path, domain.source.table, source_rows(domain), columns, {"load_date": "DATE"}) as engines:
        profiles = {}
        for dialect, run in engines.items():
            rows, params = slice_of(dialect, domain), queries.format_params(domain)
            counts = run(queries.profile_sql(dialect, domain, rows), params, named=True)
            samples = run(queries.profile_samples_sql(dialect, domain, rows), params, many=True)
            profiles[dialect] = assemble_profile(domain, counts, samples)
    duckdb_profile, snowflake_profile = profiles.values()
    assert snowflake_profile == duckdb_profile
    # And they are the right figures, not two equal wrong ones.
    assert duckdb_profile["rows"] == 40 and duckdb_profile["empty_ids"] == len(BLANKS)
    assert duckdb_profile["duplicate_ids"] == 2  # DUP three times (the blanks are all different)
    assert duckdb_profile["long_ids"] == 1 and duckdb_profile["sample_ids"]["long_ids"] == ["L" * 39]
    assert duckdb_profile["null_counts"] == {"customer_id": len(BLANKS), "last_name": len(BLANKS) + 1}
    assert {k: v["invalid"] for k, v in duckdb_profile["formats"].items()} == {"email": 1, "phone": 1, "postal_code": 2}
    assert duckdb_profile["non_empty"]["city"] == 39 and duckdb_profile["non_empty"]["first_name"] == 40


def test_the_fingerprint_counts_alike_and_follows_the_data_on_both_engines(domain, tmp_path):
    columns = [*domain.schema.columns, domain.source.partition_column]
    rows = source_rows(domain)
    with both(tmp_path, domain.source.table, rows, columns, {"load_date": "DATE"}) as engines:
        for dialect, run in engines.items():
            table = dialect.ident(domain.source.table)
            count, before = run(queries.fingerprint_sql(dialect, domain, slice_of(dialect, domain)))
            # Text, as the extract records it. (Snowflake's SUM over NUMBER is exact; fakesnow
            # renders its sum as a float's text, which still follows the data.)
            assert count == 40 and isinstance(before, str) and before
            run(
                f"UPDATE {table} SET {dialect.ident('city')} = 'elsewhere' "
                f"WHERE {dialect.ident('customer_id')} = 'C030'"
            )
            assert run(queries.fingerprint_sql(dialect, domain, slice_of(dialect, domain)))[1] != before


def test_the_figures_of_match_rows_agree_on_both_engines(domain, tmp_path):
    columns = ["RecordId", "MatchID", *domain.schema.columns]
    present = [c for c in domain.schema.columns if c != "city"]
    with both(tmp_path, "staged", match_rows(domain), columns) as engines:
        figures = {}
        for dialect, run in engines.items():
            rows = f"SELECT * FROM {dialect.ident('staged')}"
            found = target_figures(
                run(queries.figures_sql(dialect, domain, rows)),
                run(queries.figures_samples_sql(dialect, domain, rows), many=True),
            )
            non_empty = run(queries.non_empty_sql(dialect, domain, rows, present))
            figures[dialect] = {**found, "non_empty": [int(n) for n in non_empty]}
    duckdb_figures, snowflake_figures = figures.values()
    assert snowflake_figures == duckdb_figures
    assert duckdb_figures["rows"] == 10 and duckdb_figures["duplicate_ids"] == 2
    assert duckdb_figures["missing_match_ids"] == 2 and duckdb_figures["match_ids"] == 4
    assert duckdb_figures["sample_ids"] == {"duplicate_ids": ["R0"], "missing_match_ids": ["R5", "R6"]}
    assert dict(zip(present, duckdb_figures["non_empty"]))["last_name"] == 9


def test_the_matched_stage_counts_and_confidence_agree_on_both_engines(domain, tmp_path):
    columns = ["RecordId", "MatchID", "ConfidenceLevel"]
    number = {DUCKDB: "TRY_CAST({} AS DOUBLE)", SNOWFLAKE: "TRY_TO_DOUBLE({})"}  # as each warehouse reads it
    with both(tmp_path, "output", match_rows(domain), columns) as engines:
        found = {}
        for dialect, run in engines.items():
            table, (record, match_id, level) = dialect.ident("output"), map(dialect.ident, columns)
            counts = run(queries.output_counts_sql(f"SELECT {match_id} AS m FROM {table}"))
            records = f"SELECT {record} AS id, {match_id} AS m, {number[dialect].format(level)} AS c FROM {table}"
            row = run(queries.output_confidence_sql(dialect, records), {"threshold": 0.85})
            *row, samples = row
            samples = json.loads(samples) if isinstance(samples, str) else samples  # the connector's ARRAY
            found[dialect] = ([int(n) for n in counts], confidence_figures(columns, (*row, samples)))
    duckdb_found, snowflake_found = found.values()
    assert snowflake_found == duckdb_found
    counts, confidence = duckdb_found
    assert counts == [10, 4, 7]  # m1 x2, m2 x3, m4 x2 matched; m3 alone; two without a MatchID
    assert confidence["matched_records"] == 7 and confidence["with_confidence"] == 5
    assert confidence["below_threshold"] == 2 and confidence["out_of_range"] == 1
    assert (confidence["mean"], confidence["min"], confidence["sample_ids"]) == (0.89, 0.4, ["R2", "R3", "R8", "R9"])


def test_the_catalogue_queries_name_the_same_problems_on_both_engines(domain, tmp_path):
    """A missing column, one that cannot be text and a partition column that is no date are
    found alike; a missing table too."""
    columns = [c for c in domain.schema.columns if c != "email"] + [domain.source.partition_column]
    types = {"phone": ("INTEGER[]", "VARIANT"), "load_date": "VARCHAR"}
    spelt = {DUCKDB: str.lower, SNOWFLAKE: str.upper}  # as each catalogue keeps the names
    with both(tmp_path, domain.source.table, [], columns, types) as engines:
        for dialect, run in engines.items():
            name = spelt[dialect](domain.source.table)
            assert run(queries.table_exists_sql(dialect), {"name": name})[0] == 1
            assert run(queries.table_exists_sql(dialect), {"name": spelt[dialect]("nowhere")})[0] == 0
            found = dict(run(queries.columns_sql(dialect), {"name": name}, many=True))
            problems = schema_problems(domain, found, NOT_TEXT[dialect], "here")
            assert problems.pop("phone").endswith("cannot be extracted as text"), dialect
            assert problems == {
                "email": "missing",
                "load_date": f"type {found['LOAD_DATE']} is not a DATE or TIMESTAMP",
            }
            nowhere = dict(run(queries.columns_sql(dialect), {"name": "NOWHERE"}, many=True))
            assert schema_problems(domain, nowhere, NOT_TEXT[dialect], "here") == {
                domain.source.table: "table not found in here"
            }


def test_no_warehouse_spells_a_measuring_query_of_its_own():
    """The warehouses keep only where their rows are and their dialect's fragments: a count
    written in one of them would be a query kept in step by hand again."""
    folder = Path(queries.__file__).parent
    for name in ("local.py", "snowflake.py"):
        # The dialect's own fragments (`hash="..."`) are what a warehouse is meant to spell.
        text = re.sub(r'\bhash="[^"]*"', "", (folder / name).read_text())
        assert not re.search(r"count_if|COUNT\(DISTINCT|TRANSLATE\(|HASH\(|information_schema", text, re.IGNORECASE), (
            name
        )
