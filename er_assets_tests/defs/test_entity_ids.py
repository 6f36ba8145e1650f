"""Durable entity ids through the real stages: records with known truth over several daily
partitions, each run extract -> matched -> loaded in order on the local deployment (DuckDB,
the emulator). The target's `entity_id` must link records across partitions about as well as
one matching job over all the records does with the same rules, a re-run must move no id,
and a glue value must be refused by the oversized-entity check with target and registry
untouched."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from er_assets.config import load_config
from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response
from er_assets.emulator.matching import run_matching
from er_assets_tests.helpers import (
    ML_EXAMPLE,
    read_folder,
    returning_customers,
    run_stages,
    write_config,
    write_source,
)

PARTITIONS = ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]
PER_PARTITION = 120


def _pairs(sizes) -> int:
    return sum(n * (n - 1) // 2 for n in sizes)


def pairwise(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the record pairs `predicted` (record -> cluster) puts together."""
    both = _pairs(Counter((predicted[r], truth[r]) for r in predicted).values())
    said, true = _pairs(Counter(predicted.values()).values()), _pairs(Counter(truth[r] for r in predicted).values())
    precision, recall = both / said if said else 1.0, both / true if true else 1.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@pytest.fixture
def domain_config(tmp_path, local_env):
    def loosen(raw):
        # Generated data with many returning customers: the rate checks judge the shipped data.
        raw["domains"]["customers"]["dq"].update(max_match_rate=100, min_records=1)
        raw["domains"]["customers"]["dq"]["anomaly"]["enabled"] = False

    return load_config(write_config(tmp_path, loosen))


def _target(local_env, table: str = "customers_resolved") -> dict[str, tuple]:
    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    try:
        return {
            r: (e, m, p)
            for r, e, m, p in con.execute(
                f'SELECT customer_id, entity_id, "MatchID", partition_key FROM {table}'
            ).fetchall()
        }
    finally:
        con.close()


def _one_job(tmp_path, config, rows: list[dict], name: str = "customers") -> dict[str, str]:
    domain = config.domain(name)
    source = tmp_path / "all.parquet"
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in domain.schema.columns} for r in rows]), source)
    job = tmp_path / "one-job"
    run_matching(
        source,
        schema_mapping_response(domain, config.settings),
        matching_workflow_response(domain, config.settings),
        job,
        "job",
    )
    return {row["RecordId"]: row["MatchID"] for row in read_folder(job / "success")}


def test_entity_ids_link_partitions_as_one_job_over_all_records_does(tmp_path, local_env, domain_config, instance):
    rows = returning_customers(PARTITIONS, PER_PARTITION, seed=3)
    write_source(domain_config.domain("customers"), rows, local_env)
    for partition in PARTITIONS:
        assert run_stages(domain_config, instance, "customers", ["extract", "matched", "loaded"], partition).success
    truth = {r["customer_id"]: r["truth"] for r in rows}
    target = _target(local_env)
    assert len(target) == len(rows)
    durable = pairwise({r: e for r, (e, _, _) in target.items()}, truth)
    per_partition = pairwise({r: f"{p}/{m}" for r, (_, m, p) in target.items()}, truth)
    one_job = pairwise(_one_job(tmp_path, domain_config, rows), truth)
    # The durable ids find (nearly) every link the same rules find over all the data at once ...
    assert durable[2] >= 0.9 * one_job[2], (durable, one_job)
    assert durable[0] >= 0.95 * one_job[0], (durable, one_job)
    # ... where MatchIDs, one job per partition, miss most links across days.
    assert per_partition[1] < 0.6 * durable[1], (per_partition, durable)

    # A re-run of a partition's matching and load moves no id. (It re-attaches to the extract's
    # matching job; ids under new MatchIDs for the same groups: test_registry's re-run test.)
    before = {r: e for r, (e, _, _) in target.items()}
    matched = dg.AssetKey(["customers", "matched"])
    run_before = instance.fetch_materializations(matched, limit=1).records[0].run_id
    run = run_stages(domain_config, instance, "customers", ["matched", "loaded"], PARTITIONS[2])
    assert run.success and instance.fetch_materializations(matched, limit=1).records[0].run_id != run_before
    assert {r: e for r, (e, _, _) in _target(local_env).items()} == before

    # The loaded asset's metadata says what each partition did to the entities.
    loaded = instance.fetch_materializations(dg.AssetKey(["customers", "loaded"]), limit=1).records[0]
    metadata = {k: v.value for k, v in loaded.asset_materialization.metadata.items()}
    assert metadata["records_absorbed"] > 0 and metadata["entity_churn"] == 0
    assert metadata["replayed_partitions"] == PARTITIONS[3:]


def test_a_glue_value_is_refused_by_the_oversized_entity_check(tmp_path, local_env, instance):
    config = load_config(
        write_config(
            tmp_path,
            lambda raw: raw["domains"]["customers"].update(
                identity={"max_entity_size": 40},
                dq={
                    **raw["domains"]["customers"]["dq"],
                    "max_match_rate": 100,
                    "min_records": 1,
                    "anomaly": {"enabled": False},
                },
            ),
        )
    )
    rows = returning_customers(PARTITIONS[:2], 80, seed=5, glue=45)
    write_source(config.domain("customers"), rows, local_env)
    assert run_stages(config, instance, "customers", ["extract", "matched", "loaded"], PARTITIONS[0]).success
    before = _target(local_env)
    result = run_stages(config, instance, "customers", ["extract", "matched", "loaded"], PARTITIONS[1])
    assert not result.success
    failed = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    # The one that blocks; and, as a warning, the partition is not delivered.
    assert [(f.check_name, f.severity.value) for f in failed] == [
        ("oversized_entities", "ERROR"),
        ("delivered", "WARN"),
    ]
    assert "placeholder" in failed[0].description and "entities show customers" in failed[0].description
    assert _target(local_env) == before  # the partition was not swapped in, the registry unchanged
    con = duckdb.connect(str(local_env / "warehouse.duckdb"), read_only=True)
    try:
        assert (
            con.execute(
                "SELECT COUNT(*) FROM customers_resolved_entity_groups WHERE partition_key = ?", [PARTITIONS[1]]
            ).fetchone()[0]
            == 0
        )
    finally:
        con.close()


def test_ml_matching_domains_get_durable_ids_too(tmp_path, local_env, instance):
    """ML_MATCHING has no rules: the context comes from a blocking key per match key."""

    def loosen(raw):
        raw["domains"]["customers_ml"]["dq"].update(
            max_match_rate=100, min_records=1, min_confidence={"threshold": 0.0, "max_rate": 100}
        )

    raw = yaml.safe_load(ML_EXAMPLE.read_text())
    loosen(raw)
    path = tmp_path / "ml.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    rows = returning_customers(PARTITIONS[:3], PER_PARTITION, seed=4)
    write_source(config.domain("customers_ml"), rows, local_env)
    for partition in PARTITIONS[:3]:
        assert run_stages(config, instance, "customers_ml", ["extract", "matched", "loaded"], partition).success
    truth = {r["customer_id"]: r["truth"] for r in rows}
    target = _target(local_env, "customers_ml_resolved")
    durable = pairwise({r: e for r, (e, _, _) in target.items()}, truth)
    one_job = pairwise(_one_job(tmp_path, config, rows, "customers_ml"), truth)
    per_partition = pairwise({r: f"{p}/{m}" for r, (_, m, p) in target.items()}, truth)
    assert durable[2] >= 0.9 * one_job[2], (durable, one_job)
    assert per_partition[1] < durable[1], (per_partition, durable)
