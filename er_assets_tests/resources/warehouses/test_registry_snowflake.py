"""The entity registry on the Snowflake warehouse, through fakesnow: three partitions of the
customers domain extracted and loaded by `SnowflakeWarehouse` itself, with hand-written match
outputs (CSV in the stage folder, as the service writes them), so every expected entity follows
from the rules in registry.py's docstring.

What fakesnow runs here is the production SQL: the registry's tables, its lock, its apply
(QUALIFY, COUNT_IF, MD5, UPDATE ... FROM, INSERT ... WITH ... SELECT), the context query of the
extract, the load's swap and its transaction. What it cannot run (COPY INTO @stage, queries of
staged files) `FakesnowWarehouse` replaces; those statements are pinned and parsed in
test_snowflake.py.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from er_assets import layout
from er_assets.config import load_config
from er_assets.resources.warehouses import registry
from er_assets.resources.warehouses import snowflake as sf
from er_assets_tests.helpers import create_source, fake_snowflake, warehouse

P1, P2, P3 = "2024-03-01", "2024-03-02", "2024-03-03"
TARGET = '"CUSTOMERS_RESOLVED"'
# record -> (first name, last name, email, phone, load date). Blocking keys (registry.blocking_keys):
# the email; first and last name with the phone; first and last name with the address.
PEOPLE = {
    "A1": ("Ann", "Abe", "ann@example.com", "5550000001", P1),
    "A2": ("Ann", "Abe", "ann@example.com", "5550000011", P1),
    "B1": ("Bob", "Brandt", "bob@example.com", "5550000002", P1),
    "B2": ("Bob", "Brandt", "bob@example.com", "5550000022", P1),
    "C1": ("Cid", "Costa", "cid@example.com", "5550000003", P1),
    # Ann again: her email, spelt otherwise (the blocking key is coarser than the service's rules).
    "A3": ("ANN", "ABE", " Ann@Example.COM", "5559999999", P2),
    "D1": ("Dev", "Dahl", "dev@example.com", "5550000004", P2),
    # Bob's email with Cid's name and phone: the job links Bob's entity and Cid's.
    "E1": ("Cid", "Costa", "bob@example.com", "555-000-0003", P3),
}


def values(record: str) -> dict:
    first, last, email, phone, _ = PEOPLE[record]
    return {
        "customer_id": record,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "address": f"{record} Main St",
        "city": "Springfield",
        "state": "IL",
        "postal_code": "62701",
    }


@pytest.fixture
def domain():
    return load_config().domain("customers")


@pytest.fixture
def objects(tmp_path):
    return tmp_path / "objects"


def write_job(objects: Path, domain, job: str, groups: dict[str, str]) -> str:
    """A job's output as the service lays it out (`groups`: MatchID -> its records, space-
    separated, context records included); returns its success/ URI."""
    uri = layout.success_uri(layout.job_folder(layout.output_prefix(domain), domain.workflow_name, job))
    folder = objects / uri.removeprefix("s3://")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "part-00000.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["InputSourceARN", "RecordId", "MatchID", "MatchRule", *domain.schema.columns])
        for match_id, records in groups.items():
            for record in records.split():
                out.writerow(
                    [
                        "arn:aws:glue:table/er/customers_input",
                        record,
                        match_id,
                        "email_match",
                        *(values(record)[c] for c in domain.schema.columns),
                    ]
                )
    return uri


def extract(wh, domain, partition: str, run: str):
    day = dt.date.fromisoformat(partition)
    uri = layout.extract_uri(domain, partition, run)
    return uri, wh.unload_extract(domain, day, day + dt.timedelta(days=1), uri)


def entities(conn) -> dict[str, str]:
    """record -> entity id in the target, which must agree with the registry's current members."""
    cursor = conn.cursor()
    cursor.execute(f'SELECT "CUSTOMER_ID", "ENTITY_ID" FROM {TARGET}')
    target = dict(cursor.fetchall())
    cursor.execute('SELECT record_id, entity_id FROM "CUSTOMERS_RESOLVED_ENTITY_MEMBERS" WHERE until_partition IS NULL')
    members = dict(cursor.fetchall())
    assert target == {r: members.get(r) for r in target}, "the target's entity ids differ from the registry's"
    return target


def tables_now(conn) -> dict[str, list[tuple]]:
    """Every row of the target and of the registry's tables, in a stable order."""
    cursor = conn.cursor()
    names = [
        "CUSTOMERS_RESOLVED",
        *(f"CUSTOMERS_RESOLVED_ENTITY_{t}" for t in ("GROUPS", "MEMBERS", "EVENTS", "KEYS", "PLAN", "LOCK")),
    ]
    found = {}
    for name in names:
        cursor.execute(f'SELECT * FROM "{name}"')
        found[name] = sorted(cursor.fetchall(), key=repr)
    return found


def accept_all(figures: dict) -> bool:
    return True


def load(
    wh,
    domain,
    partition: str,
    job: str,
    groups: dict[str, str],
    extract_uri: str,
    run: str,
    objects: Path,
    accept=accept_all,
):
    return wh.load_matches(domain, partition, write_job(objects, domain, job, groups), accept, extract_uri, run)


def three_partitions(conn, domain, objects: Path) -> dict:
    """Extract and load the three partitions: P1 creates Ann's, Bob's and Cid's entities, P2's
    output puts Ann's context records in the MatchID of her new record, P3's links Bob's and
    Cid's entities through E1. Returns what each step saw."""
    create_source(conn, domain, [{**values(r), "load_date": dt.date.fromisoformat(PEOPLE[r][4])} for r in PEOPLE])
    wh, seen = warehouse(objects), {}
    uri1, seen["extract1"] = extract(wh, domain, P1, "r1")
    seen["load1"] = load(wh, domain, P1, "j1", {"m1": "A1 A2", "m2": "B1 B2", "m3": "C1"}, uri1, "r1", objects)
    seen["entities1"] = entities(conn)
    uri2, seen["extract2"] = extract(wh, domain, P2, "r2")
    seen["uri2"] = uri2
    seen["before2"] = wh.slice_fingerprint(domain, dt.date(2024, 3, 2), dt.date(2024, 3, 3))
    seen["load2"] = load(wh, domain, P2, "j2", {"x1": "A3 A1 A2", "x2": "D1"}, uri2, "r2", objects)
    seen["after2"] = wh.slice_fingerprint(domain, dt.date(2024, 3, 2), dt.date(2024, 3, 3))
    seen["entities2"] = entities(conn)
    uri3, seen["extract3"] = extract(wh, domain, P3, "r3")
    seen["uri3"] = uri3
    seen["load3"] = load(wh, domain, P3, "j3", {"y1": "E1 B1 B2 C1"}, uri3, "r3", objects)
    seen["entities3"] = entities(conn)
    seen["after3"] = wh.slice_fingerprint(domain, dt.date(2024, 3, 2), dt.date(2024, 3, 3))
    return seen


def context_ids(objects: Path, extract_result) -> set[str]:
    names = [f for f in extract_result.files if layout.is_data_file(f) and "/context_" in f]
    tables = [pq.read_table(objects / f.removeprefix("s3://")) for f in names]
    return {v for table in tables for v in table.column("customer_id").to_pylist()}


def test_entity_ids_follow_the_registry_across_three_partitions(domain, objects):
    with fake_snowflake(objects) as conn:
        seen = three_partitions(conn, domain, objects)
        wh = warehouse(objects)

        # P1: no registry yet, so no context; three entities, one per MatchID.
        assert seen["extract1"].context_rows == 0
        assert not any("/context_" in f for f in seen["extract1"].files)
        first = seen["entities1"]
        assert first["A1"] == first["A2"] and first["B1"] == first["B2"]
        assert len({first["A1"], first["B1"], first["C1"]}) == 3
        assert (seen["load1"].identity.created, seen["load1"].identity.churn) == (3, 0)

        # P2's extract carries Ann's known records as context (A3 shares her email's key), in a
        # file Snowflake names context_..., with the slice's column names; the fingerprint
        # counts what other partitions did to the registry: P2's own load leaves it (a re-run
        # reuses the extract and its job), P3's load makes P2's extract stale.
        assert seen["extract2"].context_rows == 2
        assert context_ids(objects, seen["extract2"]) == {"A1", "A2"}
        context_file = next(f for f in seen["extract2"].files if "/context_" in f)
        assert pq.read_table(objects / context_file.removeprefix("s3://")).column_names == domain.schema.columns
        assert seen["extract2"].fingerprint == seen["before2"][1] and seen["before2"][1].endswith("/5")
        assert seen["after2"][1] == seen["before2"][1] != seen["after3"][1]

        # P2's load: only its own records reach the target and the figures; A3 takes Ann's id.
        second, load2 = seen["entities2"], seen["load2"]
        assert (load2.rows, load2.figures["rows"], load2.replaced) == (2, 2, True)
        assert second["A3"] == first["A1"]
        assert second["D1"] not in set(first.values())
        assert {r: second[r] for r in first} == first  # nothing known moved
        assert (load2.identity.absorbed_records, load2.identity.created, load2.identity.churn) == (1, 1, 0)
        cursor = conn.cursor()
        cursor.execute(f'SELECT "CUSTOMER_ID", "PARTITION_KEY" FROM {TARGET} ORDER BY 1')
        assert cursor.fetchall() == [
            ("A1", P1),
            ("A2", P1),
            ("A3", P2),
            ("B1", P1),
            ("B2", P1),
            ("C1", P1),
            ("D1", P2),
            ("E1", P3),
        ]

        # The matched stage's figures count P2's own records only; the context record sharing
        # A3's MatchID still makes A3 a matched record.
        output2 = layout.success_uri(layout.job_folder(layout.output_prefix(domain), domain.workflow_name, "j2"))
        own = wh.match_output_figures(domain, output2, layout.error_uri(output2), seen["uri2"])
        assert (own["records"], own["match_ids"], own["matched_records"]) == (2, 2, 1)
        whole = wh.match_output_figures(domain, output2, layout.error_uri(output2))
        assert (whole["records"], whole["match_ids"], whole["matched_records"]) == (4, 2, 3)

        # P3 merges Cid's entity into Bob's (the larger): the loser's record C1, loaded in P1,
        # carries the winner's id in the target, and so does E1.
        assert context_ids(objects, seen["extract3"]) == {"B1", "B2", "C1"}
        third, load3 = seen["entities3"], seen["load3"]
        bob, cid = first["B1"], first["C1"]
        assert third["C1"] == third["E1"] == bob
        assert {r: third[r] for r in ("A1", "A2", "A3", "B1", "B2", "D1")} == {
            r: second[r] for r in ("A1", "A2", "A3", "B1", "B2", "D1")
        }
        assert (load3.identity.merged, load3.identity.absorbed_records, load3.identity.churn) == (1, 1, 1)
        cursor.execute(
            'SELECT event, entity_id, other_entity_id, records FROM "CUSTOMERS_RESOLVED_ENTITY_EVENTS" '
            "WHERE partition_key = %(p)s ORDER BY event",
            {"p": P3},
        )
        assert cursor.fetchall() == [("absorbed", bob, None, 1), ("merged", cid, bob, 1)]

        # A re-load of P3 with new MatchIDs but the same grouping moves no id: the same entities,
        # the same events, only the MatchIDs in the target and the stored groups are new.
        again = load(wh, domain, P3, "j3b", {"z7": "C1 B2 E1 B1"}, seen["uri3"], "r3b", objects)
        assert again.replaced and entities(conn) == third
        # Its events are those of the partition again; its churn, against what was committed, is 0.
        assert (again.identity.merged, again.identity.absorbed_records, again.identity.churn) == (1, 1, 0)
        cursor.execute(
            'SELECT event, entity_id, other_entity_id, records FROM "CUSTOMERS_RESOLVED_ENTITY_EVENTS" '
            "WHERE partition_key = %(p)s ORDER BY event",
            {"p": P3},
        )
        assert cursor.fetchall() == [("absorbed", bob, None, 1), ("merged", cid, bob, 1)]
        cursor.execute(f'SELECT DISTINCT "MATCHID" FROM {TARGET} WHERE "PARTITION_KEY" = %(p)s', {"p": P3})
        assert cursor.fetchall() == [("z7",)]


def test_an_output_the_checks_reject_leaves_target_and_registry_as_they_were(domain, objects):
    with fake_snowflake(objects) as conn:
        seen = three_partitions(conn, domain, objects)
        before = tables_now(conn)
        judged = []

        def reject(figures: dict) -> bool:
            judged.append(figures)
            return False

        # A P3 output that would split Bob's entity: judged with its identity figures, refused.
        result = load(
            warehouse(objects),
            domain,
            P3,
            "j3c",
            {"w1": "E1 B1", "w2": "B2 C1"},
            seen["uri3"],
            "r3c",
            objects,
            accept=reject,
        )
        assert not result.replaced and result.rows == 0
        assert judged[0]["rows"] == 1 and judged[0]["identity"].churn > 0
        assert tables_now(conn) == before
        assert entities(conn) == seen["entities3"]
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE '%\\_\\_LOAD\\_%'")
        assert cursor.fetchone()[0] == 0  # the staging and context-id tables are gone


def test_rebuild_and_show_on_snowflake(domain, objects):
    """`rebuild_entities` replays the stored groups in partition order (same ids: nothing moves)
    and `show_entity` follows a record to its entity, the merge included."""
    with fake_snowflake(objects) as conn:
        seen = three_partitions(conn, domain, objects)
        wh = warehouse(objects)
        assert wh.rebuild_entities(domain, "rebuild") == {
            "partitions": [P1, P2, P3],
            "records": 8,
            "moved": 0,
            "new": 0,
        }
        assert entities(conn) == seen["entities3"]
        shown = wh.show_entity(domain, "C1")
        assert shown["entity_id"] == seen["entities1"]["B1"]
        assert {r["record_id"] for r in shown["rows"]} == {"B1", "B2", "C1", "E1"}
        assert ("merged", seen["entities1"]["C1"]) in {(e["event"], e["entity_id"]) for e in shown["events"]}


def test_a_target_loaded_before_entity_ids_gets_the_column(domain, objects):
    """A target created without ENTITY_ID gets it before the load's transaction (DDL would
    commit it); its earlier rows have none until `rebuild_entities`."""
    with fake_snowflake(objects) as conn:
        columns = ["InputSourceARN", "RecordId", "MatchID", "MatchRule", *domain.schema.columns]
        body = ", ".join(f"{sf.ident(c)} VARCHAR" for c in columns)
        conn.cursor().execute(
            f'CREATE TABLE {TARGET} ({body}, "PARTITION_KEY" VARCHAR NOT NULL, "LOADED_AT" TIMESTAMP_LTZ NOT NULL)'
        )
        conn.cursor().execute(
            f'INSERT INTO {TARGET} ("CUSTOMER_ID", "MATCHID", "PARTITION_KEY", "LOADED_AT", '
            "\"EMAIL\") VALUES ('Z1', 'old', '2024-02-01', CURRENT_TIMESTAMP(), 'z@example.com')"
        )
        wh = warehouse(objects)
        load(wh, domain, P1, "j1", {"m1": "A1 A2"}, "", "r1", objects)
        assert entities(conn)["Z1"] is None and entities(conn)["A1"] is not None
        moved = wh.rebuild_entities(domain, "rebuild")
        assert moved["partitions"] == ["2024-02-01", P1] and moved["new"] == 1
        assert entities(conn)["Z1"] is not None


def test_context_and_keys_render_alike_in_duckdb_and_snowflake(domain, objects):
    """registry.keys_select and registry.context_sql, rendered for DuckDB and for Snowflake (run
    by fakesnow), find the same blocking keys and the same candidate records on the same data:
    case, white space and ASCII punctuation are coarsened alike, a NULL part drops the key."""
    import duckdb

    from er_assets.resources.warehouses.local import DUCKDB

    known = [  # (record, first, last, email, phone, entity)
        ("K1", "Ann", "O'Brien", "ann.obrien@example.com", "(555) 010-7788", "E1"),
        ("K2", "Ann", "O'Brien", None, "555 010 7788", "E1"),
        ("K3", "José", "Müller", "jose@example.com", "555-444-0000", "E2"),
        ("K4", "Zed", "Zulu", "zed@example.com", "5550000000", "E3"),
        ("K5", "Yan", "Yu", "\tyan@example.com ", "5551111111", "E4"),
    ]
    slice_rows = [
        ("S1", "ANN", "OBRIEN", "Ann.OBrien@Example.com", "555.010.7788"),  # email and name+phone of E1
        ("S2", "josé", "MÜLLER", "other@example.com", "5554440000"),  # E2 by name (any case) and phone
        ("S5", "Zed", "Zulu", "zulu@example.com", None),  # no phone: no name+phone key, so not E3
        ("S3", "Yan", "Yu", "yan@example.com", "5552222222"),  # E4 by its tab-padded email
        ("S4", "Nobody", "New", "new@example.com", "5553333333"),
    ]
    columns = domain.schema.columns

    def full(row):
        record, first, last, email, phone = row[:5]
        return {
            **dict.fromkeys(columns),
            "customer_id": record,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
        }

    def run(con_execute, dialect, quote_table, target, partition_column):
        ident = dialect.ident
        tables = registry.Tables.of(domain)
        for statement in registry.create_sql(dialect, domain):
            con_execute(statement)
        body = ", ".join(f"{ident(c)} VARCHAR" for c in columns)
        con_execute(f"CREATE TABLE {ident(target)} ({body}, {ident(partition_column)} VARCHAR)")
        con_execute(f"CREATE TABLE {quote_table('slice')} ({body})")
        for row in known:
            values = full(row)
            literal = ", ".join(
                "NULL" if values[c] is None else "'" + values[c].replace("'", "''") + "'" for c in columns
            )
            con_execute(f"INSERT INTO {ident(target)} VALUES ({literal}, '{P1}')")
            con_execute(
                f"INSERT INTO {ident(tables.members)} (record_id, entity_id, from_partition) "
                f"VALUES ('{row[0]}', '{row[5]}', '{P1}')"
            )
        for row in slice_rows:
            values = full(row)
            literal = ", ".join(
                "NULL" if values[c] is None else "'" + values[c].replace("'", "''") + "'" for c in columns
            )
            con_execute(f"INSERT INTO {quote_table('slice')} VALUES ({literal})")
        known_keys = registry.keys_select(dialect, domain, f"SELECT * FROM {ident(target)}")
        con_execute(
            f"INSERT INTO {ident(tables.keys)} (partition_key, record_id, block_hash) SELECT '{P1}', "
            f"record_id, {dialect.hash.format('block_key')} FROM ({known_keys})"
        )
        slice_select = f"SELECT * FROM {quote_table('slice')}"
        keys = set(con_execute(registry.keys_select(dialect, domain, slice_select)).fetchall())
        candidates = {
            r[0]
            for r in con_execute(
                registry.context_sql(dialect, domain, slice_select, target, partition_column)
            ).fetchall()
        }
        return keys, candidates

    con = duckdb.connect()
    try:
        local = run(lambda sql: con.execute(sql), DUCKDB, lambda t: f'"{t}"', "customers_resolved", "partition_key")
    finally:
        con.close()
    with fake_snowflake(objects) as conn:
        cursor = conn.cursor()

        def execute(sql):
            cursor.execute(sql)
            return cursor

        snowflake = run(execute, sf.SNOWFLAKE, lambda t: sf.ident(t), "customers_resolved", sf.PARTITION_COLUMN)
    assert snowflake == local
    keys, candidates = local
    assert candidates == {"K1", "K2", "K3", "K5"}
    assert ("S1", "email_match:annobrienexamplecom") in keys
    assert ("S2", "name_phone_match:josémüller|5554440000") in keys
    assert not [k for record, k in keys if record == "S5" and k.startswith("name_phone_match:")]
