"""Each stage on the local deployment: DuckDB warehouse, folder object store, the emulator."""

import dagster as dg
import duckdb

from er_assets.defs.definitions import build_definitions
from er_assets.environment import local_paths
from er_assets.pipeline import checks
from er_assets_tests.helpers import seed

PARTITION = "2026-11-28"


def materialize(config, instance, domain: str, stages, partition=PARTITION, run_config=None):
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        run_config=run_config,
        asset_selection=[dg.AssetKey([domain, s]) for s in stages],
    )


def query(sql, *params):
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_stages_one_by_one_then_rerun_changes_nothing(config, local_env, instance):
    domain = config.domain("customers")
    seed(domain, PARTITION, 3000, local_env)
    seed(domain, "2026-11-27", 500, local_env)  # a neighbouring day must not leak in

    extract = materialize(config, instance, "customers", ["extract"])
    assert extract.success
    meta = extract.asset_materializations_for_node("customers__extract")[0].metadata
    assert meta["rows"].value == 3000
    assert meta["uri"].value == (
        f"s3://er-data-lake/entity-resolution/customers/extract/partition=2026-11-28/run={extract.run_id}/"
    )
    parquet = (
        local_paths()["objects"]
        / f"er-data-lake/entity-resolution/customers/extract/partition=2026-11-28/run={extract.run_id}"
    )
    assert [p.name for p in parquet.iterdir()] == ["data_0.parquet"]

    matched = materialize(config, instance, "customers", ["matched"])
    assert matched.success
    mmeta = matched.asset_materializations_for_node("customers__matched")[0].metadata
    job_id = mmeta["job_id"].value
    assert mmeta["output_uri"].value.endswith(f"/customer-matching-workflow/{job_id}/success/")
    assert mmeta["input_records"].value == mmeta["output_rows"].value == 3000
    # Locally DuckDB reads the output folder in this process, and the metadata says how much.
    output = local_env / "s3" / mmeta["output_uri"].value[len("s3://") :]
    assert mmeta["orchestrator_bytes_read"].value == sum(p.stat().st_size for p in output.glob("*.csv")) > 0
    assert 0 < mmeta["match_ids"].value < 3000

    loaded = materialize(config, instance, "customers", ["loaded"])
    assert loaded.success
    assert all(e.passed for e in loaded.get_asset_check_evaluations())
    # Delivered, and said how late: the partition's SLA ran out long before this test ran.
    [delivered] = [e for e in loaded.get_asset_check_evaluations() if e.check_name == "delivered"]
    assert delivered.severity == dg.AssetCheckSeverity.WARN
    assert delivered.metadata["minutes_late"].value > 0 and "minutes after it was due" in delivered.description

    # One target row per source record of the partition, each with a MatchID.
    rows = query(
        """SELECT count(*), count("MatchID"), count(DISTINCT customer_id) FROM customers_resolved
                    WHERE partition_key = ?""",
        PARTITION,
    )
    assert rows == [(3000, 3000, 3000)]
    # MatchIDs group the seeded duplicates: most true entities land in exactly one group,
    # and almost no group mixes two entities.
    split, impure, entities = query("""
        WITH j AS (SELECT r."MatchID", s.true_entity FROM customers_resolved r
                   JOIN customers_source s USING (customer_id))
        SELECT (SELECT count(*) FROM (SELECT true_entity FROM j GROUP BY 1 HAVING count(DISTINCT "MatchID") > 1)),
               (SELECT count(*) FROM (SELECT "MatchID" FROM j GROUP BY 1 HAVING count(DISTINCT true_entity) > 1)),
               (SELECT count(DISTINCT true_entity) FROM j)""")[0]
    assert split / entities < 0.05 and impure / entities < 0.01
    duplicated_entities = query("""SELECT count(*) FROM (SELECT true_entity FROM customers_source
                                   WHERE load_date = DATE '2026-11-28' GROUP BY 1 HAVING count(*) > 1)""")[0][0]
    grouped = query(
        """SELECT count(*) FROM (SELECT "MatchID" FROM customers_resolved
                       WHERE partition_key = ? GROUP BY 1 HAVING count(*) > 1)""",
        PARTITION,
    )[0][0]
    assert grouped >= 0.9 * duplicated_entities

    # Re-running every stage of the same partition changes nothing.
    before = query('SELECT customer_id, "MatchID" FROM customers_resolved ORDER BY 1')
    assert materialize(config, instance, "customers", ["extract", "matched", "loaded"]).success
    after = query('SELECT customer_id, "MatchID" FROM customers_resolved ORDER BY 1')
    assert len(after) == len(before) == 3000
    assert query("SELECT count(DISTINCT partition_key) FROM customers_resolved") == [(1,)]


def test_a_rerun_of_matched_reuses_the_succeeded_job(config, local_env, instance):
    seed(config.domain("vendors"), "2026-10-01", 400, local_env)
    assert materialize(config, instance, "vendors", ["extract", "matched"], partition="2026-10-01").success
    again = materialize(config, instance, "vendors", ["matched"], partition="2026-10-01")
    meta = again.asset_materializations_for_node("vendors__matched")[0].metadata
    assert meta["reused_job"].value is True
    jobs = list((local_paths()["emulator"] / "jobs").glob("*.json"))
    assert len(jobs) == 1


def test_loaded_without_matched_fails_clearly(config, local_env, instance):
    result = materialize(config, instance, "products", ["loaded"], partition="2026-11-22")
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error.cause.cls_name == "MissingUpstream"
    assert "products/matched has not been materialised for partition 2026-11-22" in error.cause.message


def test_failing_extract_gate_stops_matching_in_the_same_run(config, local_env, instance):
    seed(config.domain("products"), "2026-11-22", 20, local_env)  # below min_records=100
    result = materialize(config, instance, "products", ["extract", "matched", "loaded"], partition="2026-11-22")
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"min_records", "record_count_anomaly"}  # the second: not judged, a warning
    assert checks.blocking_failures(result.get_asset_check_evaluations()) == ["min_records"]
    assert "products__matched" not in {e.step_key for e in result.get_step_success_events()}
    assert not (local_paths()["emulator"] / "jobs").exists() or not list((local_paths()["emulator"] / "jobs").iterdir())


NAMES = [
    ("محمد", "عبد الله"),
    ("דוד", "לוי"),
    ("小明", "王"),
    ("José", "García-Márquez"),
    ("Zoë", "Ångström"),
    ("Łukasz", "Żółć"),
]


def test_names_in_every_script_survive_extract_matched_loaded_unchanged(config, local_env, instance):
    domain = config.domain("customers")
    seed(domain, PARTITION, 300, local_env)
    con = duckdb.connect(str(local_paths()["warehouse"]))
    try:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT customer_id FROM customers_source WHERE load_date = ? ORDER BY customer_id LIMIT ?",
                [PARTITION, 2 * len(NAMES)],
            ).fetchall()
        ]
        # Each name twice, with the same phone and different emails: only name_phone_match can
        # pair them, so the pair matches only if normalisation kept the name's letters.
        for i, (first, last) in enumerate(NAMES * 2):
            con.execute(
                "UPDATE customers_source SET first_name = ?, last_name = ?, email = ?, phone = ? WHERE customer_id = ?",
                [first, last, f"p{i}@example.org", f"(555) 010-{i % len(NAMES):04d}", ids[i]],
            )
    finally:
        con.close()
    result = materialize(config, instance, "customers", ["extract", "matched", "loaded"])
    assert result.success
    loaded = query(
        'SELECT customer_id, first_name, last_name, "MatchID" FROM customers_resolved '
        "WHERE partition_key = ? AND customer_id IN (SELECT unnest(?))",
        PARTITION,
        ids,
    )
    by_id = {row[0]: row[1:] for row in loaded}
    for i, (first, last) in enumerate(NAMES * 2):
        assert by_id[ids[i]][:2] == (first, last)
    for i in range(len(NAMES)):
        assert by_id[ids[i]][2] == by_id[ids[i + len(NAMES)]][2], NAMES[i]  # matched with its twin
