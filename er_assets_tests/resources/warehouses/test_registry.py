"""The entity registry's assignment rules on DuckDB, one partition's groups at a time:
created, absorbed, merged, split, re-runs with new MatchIDs, partitions applied out of order,
a rollback, and the rebuild. Each job output is written by hand, so every expectation follows
from the rules in registry.py's docstring, not from the emulator."""

from __future__ import annotations

import duckdb
import pytest

from er_assets.resources.warehouses import registry
from er_assets.resources.warehouses.local import DUCKDB, PARTITION_COLUMN

TARGET = "customers_resolved"


TARGET_DDL = (
    f"CREATE TABLE {TARGET} (customer_id VARCHAR, first_name VARCHAR, last_name VARCHAR, email VARCHAR, "
    "phone VARCHAR, address VARCHAR, city VARCHAR, state VARCHAR, postal_code VARCHAR, "
    '"MatchID" VARCHAR, "MatchRule" VARCHAR, partition_key VARCHAR, loaded_at TIMESTAMP, entity_id VARCHAR)'
)


@pytest.fixture
def con(config):
    con = duckdb.connect()
    con.execute(TARGET_DDL)
    yield con
    con.close()


@pytest.fixture
def reg(con, config):
    r = registry.Registry(DUCKDB, config.domain("customers"), con.execute, TARGET, PARTITION_COLUMN)
    r.create()
    return r


def load(
    con, reg, partition: str, groups: dict[str, str], context: str = "", run: str = "run"
) -> registry.IdentityFigures:
    """Load one partition as the warehouse does: `groups` maps a MatchID to the records of its
    group (space-separated), `context` names the records that are context (not the partition's)."""
    rows = [(record, match_id) for match_id, records in groups.items() for record in records.split()]
    ctx = set(context.split())
    con.execute('CREATE OR REPLACE TEMP TABLE staged_job (customer_id VARCHAR, "MatchID" VARCHAR)')
    con.executemany("INSERT INTO staged_job VALUES (?, ?)", rows)
    con.execute("CREATE OR REPLACE TEMP TABLE context_ids (record_id VARCHAR)")
    if ctx:
        con.executemany("INSERT INTO context_ids VALUES (?)", [(r,) for r in ctx])
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {TARGET} WHERE partition_key = ?", [partition])
    con.execute(
        f'INSERT INTO {TARGET} (customer_id, email, "MatchID", partition_key, loaded_at) '
        "SELECT customer_id, customer_id || '@example.com', \"MatchID\", ?, now() FROM staged_job "
        "WHERE customer_id NOT IN (SELECT record_id FROM context_ids)",
        [partition],
    )
    figures = reg.apply(partition, run, "SELECT * FROM staged_job", "SELECT record_id FROM context_ids")
    con.execute("COMMIT")
    return figures


def loaded_in(config, partitions: dict[str, tuple], order: list[str]):
    """Load `partitions` (partition -> (groups, context)) in `order` into a fresh database: the
    record -> entity map, the last load's figures, and what a rebuild then moved."""
    con = duckdb.connect()
    try:
        con.execute(TARGET_DDL)
        reg = registry.Registry(DUCKDB, config.domain("customers"), con.execute, TARGET, PARTITION_COLUMN)
        reg.create()
        for partition in order:
            figures = load(con, reg, partition, *partitions[partition])
        ids = entities(con)
        return ids, figures, reg.rebuild("rebuild")
    finally:
        con.close()


def entities(con) -> dict[str, str]:
    """record -> current entity, from the registry; the target must agree."""
    members = dict(
        con.execute(
            f"SELECT record_id, entity_id FROM {TARGET}_entity_members WHERE until_partition IS NULL"
        ).fetchall()
    )
    target = dict(con.execute(f"SELECT customer_id, entity_id FROM {TARGET}").fetchall())
    assert target == {r: members[r] for r in target}, "the target's entity ids differ from the registry's"
    return members


def partition_of(groups: dict[str, set[str]]) -> set[frozenset]:
    by_entity: dict[str, set[str]] = {}
    for record, entity in groups.items():
        by_entity.setdefault(entity, set()).add(record)
    return {frozenset(v) for v in by_entity.values()}


def events(con, partition: str) -> list[tuple]:
    return con.execute(
        f"SELECT event, entity_id, other_entity_id, records FROM {TARGET}_entity_events "
        "WHERE partition_key = ? ORDER BY event, entity_id",
        [partition],
    ).fetchall()


def test_new_records_join_the_entity_of_their_context_record(con, reg):
    first = load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    assert (first.created, first.absorbed_records, first.churn) == (2, 0, 0)
    before = entities(con)
    second = load(con, reg, "2026-01-02", {"x9": "d a", "x8": "e"}, context="a")
    after = entities(con)
    assert after["d"] == before["a"] == before["b"] and after["e"] not in before.values()
    assert (second.created, second.absorbed_records, second.churn, second.merged) == (1, 1, 0, 0)
    assert ("absorbed", before["a"], None, 1) in events(con, "2026-01-02")
    assert second.records == 2 and second.without_entity == 0


def test_a_group_joining_two_entities_merges_them_into_the_larger_one(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    known = entities(con)
    figures = load(con, reg, "2026-01-02", {"x": "d a c"}, context="a c")
    after = entities(con)
    # a's entity has two records, c's one: c's entity is merged into a's, and so is d.
    assert after["c"] == after["d"] == after["a"] == after["b"] == known["a"]
    assert figures.merged == 1 and figures.churn == 1
    assert ("merged", known["c"], known["a"], 1) in events(con, "2026-01-02")


def test_a_tie_goes_to_the_older_entity_then_the_smaller_id(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a"})
    load(con, reg, "2026-01-02", {"m1": "b"})
    old, young = entities(con)["a"], entities(con)["b"]
    load(con, reg, "2026-01-03", {"x": "b a c"}, context="a b")
    assert set(entities(con).values()) == {old}
    assert young != old


def test_records_the_job_separates_split_from_their_entity(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b c"})
    known = entities(con)["a"]
    figures = load(con, reg, "2026-01-02", {"x": "a d", "y": "b c"}, context="a b c")
    after = entities(con)
    assert after["b"] == after["c"] == known  # the entity stays with most of its records
    assert after["a"] == after["d"] != known
    assert figures.split == 1 and figures.churn == 1
    assert ("split", known, after["a"], 1) in events(con, "2026-01-02")


def test_a_rerun_with_new_match_ids_moves_no_id(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    load(con, reg, "2026-01-02", {"x": "d a", "y": "e"}, context="a")
    before = entities(con)
    history = con.execute(f"SELECT COUNT(*) FROM {TARGET}_entity_members").fetchone()
    load(con, reg, "2026-01-02", {"other-1": "e", "other-2": "a d"}, context="a", run="again")
    assert entities(con) == before
    assert con.execute(f"SELECT COUNT(*) FROM {TARGET}_entity_members").fetchone() == history


def test_an_earlier_partition_loaded_late_gives_the_ids_of_loading_in_order(config):
    partitions = {
        "2026-01-01": ({"m1": "a b", "m2": "c"}, ""),
        "2026-01-02": ({"x": "d a c"}, "a c"),
        "2026-01-03": ({"y": "e d", "z": "f"}, "d"),
    }
    in_order, _, _ = loaded_in(config, partitions, sorted(partitions))
    late, figures, _ = loaded_in(config, partitions, ["2026-01-01", "2026-01-03", "2026-01-02"])
    assert figures.replayed == ("2026-01-03",)
    assert late == in_order


def test_a_rolled_back_apply_leaves_target_and_registry_as_they_were(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    tables = [TARGET] + [f"{TARGET}_entity_{t}" for t in ("members", "events", "groups", "keys")]

    def snapshot():
        return {t: sorted(map(str, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}

    before = snapshot()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE staged_job AS SELECT 'd' AS customer_id, 'x' AS \"MatchID\" "
        "UNION ALL SELECT 'a', 'x'"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE context_ids AS SELECT 'a' AS record_id")
    con.execute("BEGIN")
    reg.apply("2026-01-02", "refused", "SELECT * FROM staged_job", "SELECT record_id FROM context_ids")
    con.execute("ROLLBACK")
    assert snapshot() == before


def test_oversized_entities_are_named_with_their_size(con, reg, config):
    records = " ".join(f"r{i}" for i in range(config.domain("customers").identity.max_entity_size + 1))
    figures = load(con, reg, "2026-01-01", {"glue": records, "m2": "x"})
    assert len(figures.oversized) == 1 and figures.oversized[0][1] == 501


def test_rebuild_replays_in_order_and_counts_what_moved(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    load(con, reg, "2026-01-02", {"x": "d a c"}, context="a c")
    settled = entities(con)
    # Someone rewrote ids by hand: the rebuild puts them back and says how many it moved.
    con.execute(
        f"UPDATE {TARGET}_entity_members SET entity_id = 'Ewrong' WHERE record_id = 'b' AND until_partition IS NULL"
    )
    moved = reg.rebuild("rebuild-1")
    assert moved["partitions"] == ["2026-01-01", "2026-01-02"]
    assert moved["moved"] == 1 and moved["new"] == 0 and moved["records"] == 4
    assert entities(con) == settled


def test_rebuild_adopts_partitions_loaded_before_the_registry(con, reg):
    con.execute(
        f'INSERT INTO {TARGET} (customer_id, "MatchID", partition_key) VALUES '
        "('a', 'm1', '2025-12-30'), ('b', 'm1', '2025-12-30'), ('c', 'm9', '2025-12-31')"
    )
    moved = reg.rebuild("rebuild-1")
    assert moved["new"] == 3 and moved["partitions"] == ["2025-12-30", "2025-12-31"]
    assert partition_of(entities(con)) == {frozenset("ab"), frozenset("c")}


def test_blocking_keys_follow_the_rules_and_ignore_case_and_punctuation(con, config):
    domain = config.domain("customers")
    assert set(registry.blocking_keys(domain)) == {"email_match", "name_phone_match", "name_address_match"}
    rows = (
        "SELECT * FROM (VALUES ('1', 'Ana', 'Lund', 'Ana.Lund@X.com ', '(555) 010-2030', '1 Main St', 'X', 'IL', "
        "'62701'), ('2', 'ANA', 'lund', 'ana.lund@x.com', '555-010-2030', NULL, NULL, NULL, NULL)) "
        "AS t(customer_id, first_name, last_name, email, phone, address, city, state, postal_code)"
    )
    keys = con.execute(registry.keys_select(DUCKDB, domain, rows)).fetchall()
    by_record: dict[str, set[str]] = {}
    for record, key in keys:
        by_record.setdefault(record, set()).add(key)
    # Record 2 has no address: no name_address key; its email and name+phone keys equal record 1's.
    assert {k.split(":")[0] for k in by_record["2"]} == {"email_match", "name_phone_match"}
    assert by_record["2"] <= by_record["1"]


def test_show_follows_a_merge_to_the_current_entity(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b", "m2": "c"})
    known = entities(con)
    load(con, reg, "2026-01-02", {"x": "d a c"}, context="a c")
    shown = reg.show(known["c"])
    assert shown["entity_id"] == known["a"] and shown["merged_from_trail"] == [known["c"]]
    assert {r["record_id"] for r in shown["rows"]} == set("abcd") and shown["records"] == 4
    assert {e["event"] for e in shown["events"]} == {"created", "absorbed", "merged"}
    assert reg.show("d")["entity_id"] == known["a"]


def test_an_entity_that_grows_past_the_limit_is_oversized_with_its_whole_size(con, reg, config):
    limit = config.domain("customers").identity.max_entity_size
    records = [f"r{i}" for i in range(limit)]
    assert load(con, reg, "2026-01-01", {"glue": " ".join(records)}).oversized == ()
    # Two new records join it through one context record: its registry size counts, not the job's 3.
    grown = load(con, reg, "2026-01-02", {"x": "n1 n2 r0"}, context="r0")
    assert grown.oversized == ((entities(con)["r0"], limit + 2),)
    # A split takes records away: the entity only shrank, so this partition does not flag it again,
    # and gaining records later counts what it lost.
    shrunk = load(con, reg, "2026-01-03", {"y": "r1 n3", "z": " ".join(records[2:])}, context=" ".join(records[1:]))
    assert shrunk.split == 1 and shrunk.oversized == ()
    again = load(con, reg, "2026-01-04", {"w": "n4 r9"}, context="r9")
    assert again.oversized == ((entities(con)["r9"], limit + 2 - 1 + 1),)


def test_a_late_partition_whose_records_were_later_context_gives_the_in_order_ids(config):
    """01-03's job had 01-02's b2 as context. Loaded late, 01-02 is applied before 01-03 again:
    b2's id must come from b2 (its own partition), not from a3, 01-03's record."""
    partitions = {"2026-01-01": ({"m": "z"}, ""), "2026-01-02": ({"m": "b2"}, ""), "2026-01-03": ({"x": "a3 b2"}, "b2")}
    in_order, _, _ = loaded_in(config, partitions, sorted(partitions))
    late, _, rebuilt = loaded_in(config, partitions, ["2026-01-01", "2026-01-03", "2026-01-02"])
    assert late == in_order and rebuilt["moved"] == 0


def test_a_record_listed_twice_by_a_job_gets_one_entity(con, reg):
    load(con, reg, "2026-01-01", {"x": "a d", "y": "d c"})
    current = con.execute(
        f"SELECT record_id, COUNT(*) FROM {TARGET}_entity_members WHERE until_partition IS NULL "
        "GROUP BY record_id HAVING COUNT(*) > 1"
    ).fetchall()
    assert current == []


def test_the_matched_figures_leave_the_context_records_out(tmp_path):
    """An ML output whose group m1 holds an own record and a context record: the own record is
    matched, the context record is neither counted nor sampled, in the counts and in the
    ConfidenceLevel figures."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from er_assets.resources.warehouses.local import confidence_summary, match_counts

    success = tmp_path / "success"
    success.mkdir()
    (success / "part-0.csv").write_text(
        "RecordId,MatchID,ConfidenceLevel\na,m1,0.9\nk,m1,0.1\nb,m2,0.5\nc,m2,0.5\nd,m3,\n"
    )
    context = tmp_path / "context_0.parquet"
    pq.write_table(pa.table({"customer_id": ["k"]}), context)
    assert match_counts(success) == (5, 3, 4)
    assert match_counts(success, [str(context)], "customer_id") == (4, 3, 3)
    everything = confidence_summary(success, 0.7)
    own = confidence_summary(success, 0.7, [str(context)], "customer_id")
    assert (everything["matched_records"], everything["below_threshold"]) == (4, 3)
    assert (own["matched_records"], own["below_threshold"], own["sample_ids"]) == (3, 2, ["b", "c"])


def test_a_rerun_is_judged_against_what_was_committed(con, reg, config):
    load(con, reg, "2026-01-01", {"m1": "a b c", "m2": "e"})
    merged = load(con, reg, "2026-01-02", {"x": "d a e"}, context="a e")
    assert merged.merged == 1 and merged.churn == 1  # e's entity into a's
    # The re-run's job keeps e apart: against the registry after the undo nothing moves, against
    # what was committed e moves back out: churn 1.
    undone = load(con, reg, "2026-01-02", {"x": "d a", "y": "e"}, context="a e", run="again")
    assert undone.merged == 0 and undone.churn == 1
    # A late load whose replay grows an entity past the limit is judged after the replay.
    limit = config.domain("customers").identity.max_entity_size
    late = " ".join(f"l{i}" for i in range(limit - 3))  # a b c and these: at the limit, not above
    figures = load(con, reg, "2026-01-01", {"m1": f"a b c {late}", "m2": "e"}, run="late")
    assert figures.replayed == ("2026-01-02",)
    assert figures.oversized == ((entities(con)["a"], limit + 1),)  # d, replayed, takes it above


def test_an_entity_born_of_a_split_counts_as_created(con, reg):
    load(con, reg, "2026-01-01", {"m1": "a b c"})
    figures = load(con, reg, "2026-01-02", {"x": "a b", "y": "c"}, context="a b c")
    assert (figures.split, figures.created, figures.churn) == (1, 1, 1)


def test_a_tied_entity_stays_with_its_smallest_record(con, reg):
    """Split evenly, the entity stays in the group holding its smallest (oldest) record, whatever
    the partition's own records in the groups: old ids are the ones that stay put."""
    load(con, reg, "2026-01-01", {"m": "a b"})
    known = entities(con)["a"]
    figures = load(con, reg, "2026-01-02", {"x": "a zz", "y": "b c"}, context="a b")
    after = entities(con)
    assert after["a"] == after["zz"] == known and after["b"] == after["c"] != known
    assert figures.split == 1
