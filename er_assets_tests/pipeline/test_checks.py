"""The bad-data matrix: each defect is seeded into the local warehouse, the pipeline runs, and
the right check fails with a message that explains it, nothing reaches the target table and
the exit status is non-zero. Then clean data, warnings, and the gate across runs.

Most cases run in-process and take their exit code from the bridge's own `exit_code_for`; a
few go through `python -m autosys_bridge.cli run` as AutoSys would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from autosys_bridge.runner import exit_code_for
from er_assets import exit_codes
from er_assets.config import ConfigError, load_config
from er_assets.environment import local_paths
from er_assets.pipeline import checks
from er_assets.stages import ASSETS as STAGES
from er_assets_tests.helpers import local_sql, run_stages, seed, write_config

DOMAIN = "customers"
PARTITION = "2026-11-28"
DATE_ARGS = ["--date", PARTITION]
RECORDS = 300

# Poll the emulator every second at most: the default back-off is sized for AWS.
BRIDGE = [sys.executable, "-m", "autosys_bridge.cli", "run", DOMAIN]


def run(config, instance, stages=STAGES, partition=PARTITION, run_config=None):
    return run_stages(config, instance, DOMAIN, stages, partition, run_config)


def bridge(stage: str, *args: str):
    return subprocess.run(
        [*BRIDGE, stage, *DATE_ARGS, "--check-interval", "1", *args], capture_output=True, text=True, timeout=120
    )


def target(partition: str = PARTITION) -> list[tuple]:
    """The partition's (record id, MatchID) rows in the target table, none if it does not exist."""
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers_resolved'")
        if not exists.fetchone()[0]:
            return []
        return con.execute(
            'SELECT customer_id, "MatchID" FROM customers_resolved WHERE partition_key = ? ORDER BY 1', [partition]
        ).fetchall()
    finally:
        con.close()


def judged(evaluation: dg.AssetCheckEvaluation) -> bool:
    """False for a history check that had too little history to judge (a WARN, not a pass)."""
    return evaluation.metadata.get("judged", dg.MetadataValue.bool(True)).value


def failures(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed and judged(e)}


def seeded(config, local_env, records=RECORDS, partition=PARTITION):
    seed(config.domain(DOMAIN), partition, records, local_env)


# --- the defects ---------------------------------------------------------------------------------
# Each returns the configuration to run with, after seeding the defect.


def empty_extract(config, local_env, tmp_path, instance):
    seeded(config, local_env, partition="2026-11-27")  # the table has rows, none for the partition
    return config


def too_few_rows(config, local_env, tmp_path, instance):
    seeded(config, local_env, records=20)
    return config


def null_required_field(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql(
        "UPDATE customers_source SET last_name = CASE WHEN customer_id LIKE '%1' THEN NULL ELSE '  ' END "
        "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY customer_id LIMIT 10)"
    )
    return config


def duplicate_ids(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql(
        "UPDATE customers_source SET customer_id = (SELECT min(customer_id) FROM customers_source) "
        "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY customer_id DESC LIMIT 2)"
    )
    return config


def over_long_id(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql(
        f"UPDATE customers_source SET customer_id = '{'C' * 39}' "
        "WHERE customer_id = (SELECT max(customer_id) FROM customers_source)"
    )
    return config


def malformed_emails(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql(
        "UPDATE customers_source SET email = 'not-an-email' "
        "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY customer_id LIMIT 30)"
    )
    return config


def missing_column(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql("ALTER TABLE customers_source DROP COLUMN email")
    return config


def record_count_spike(config, local_env, tmp_path, instance):
    path = write_config(tmp_path, lambda raw: raw["domains"][DOMAIN]["dq"].update(anomaly={"min_history": 3}))
    spiky = load_config(path)
    for day in ("2026-11-25", "2026-11-26", "2026-11-27"):
        seeded(spiky, local_env, records=200, partition=day)
        assert run(spiky, instance, ["extract"], partition=day).success
    seeded(spiky, local_env, records=1000)
    return spiky


def match_rate_too_low(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    # Every record a different person: no rule can match any two.
    local_sql("UPDATE customers_source SET email = customer_id || '@example.com', first_name = customer_id")
    return config


def match_rate_too_high(config, local_env, tmp_path, instance):
    seeded(config, local_env)
    local_sql("UPDATE customers_source SET email = 'same.person@example.com'")
    return config


MATRIX = [
    (empty_extract, "min_records", "empty extract: 0 records in the partition; at least 100 required"),
    (too_few_rows, "min_records", "20 records in the partition; at least 100 required (dq.min_records)"),
    (null_required_field, "required_fields", "last_name is empty in 10 of 300 records (3.33%)"),
    (duplicate_ids, "unique_ids", "customer_id: 2 duplicate ids"),
    (over_long_id, "unique_ids", "customer_id: 1 long ids; ids must be non-empty, unique and at most 38"),
    (malformed_emails, "value_formats", "email (EMAIL_ADDRESS): 30 of"),
    (
        missing_column,
        "source_schema",
        "source table customers_source does not match the configuration (email: missing)",
    ),
    (record_count_spike, "record_count_anomaly", "record count 1000 outside [100, 300], the trailing median 200"),
    (
        match_rate_too_low,
        "match_rate",
        "0.0% of 300 records share their MatchID with another record; expected [5.0, 60.0]%",
    ),
    (match_rate_too_high, "match_rate", "100.0% of 300 records share their MatchID"),
]


@pytest.mark.parametrize("defect, check, message", MATRIX, ids=[m[0].__name__ for m in MATRIX])
def test_defect_fails_its_check_and_loads_nothing(defect, check, message, config, local_env, tmp_path, instance):
    run_with = defect(config, local_env, tmp_path, instance)
    result = run(run_with, instance)
    failed = failures(result)
    assert check in failed, {n: e.description for n, e in failed.items()}
    assert message in failed[check].description
    assert failed[check].severity == dg.AssetCheckSeverity.ERROR
    # The stage does not materialise (Dagster shows the partition failed); it keeps its result
    # as an observation that says so, which the anomaly medians leave out.
    stage = failed[check].asset_key
    assert stage not in [m.asset_key for m in result.get_asset_materialization_events()]
    [blocked] = [
        e.asset_observation_data.asset_observation
        for e in result.get_asset_observation_events()
        if e.asset_key == stage and "checks_passed" in e.asset_observation_data.asset_observation.metadata
    ]
    assert blocked.metadata["checks_passed"].value is False
    assert target() == []
    assert not result.success
    assert exit_code_for(result)[0] == exit_codes.DQ_GATE_FAILED


def test_offending_ids_observed_value_and_threshold_are_in_the_metadata(config, local_env, tmp_path, instance):
    null_required_field(config, local_env, tmp_path, instance)
    local_sql(
        f"UPDATE customers_source SET customer_id = '{'C' * 39}' WHERE customer_id = "
        "(SELECT max(customer_id) FROM customers_source)"
    )
    failed = failures(run(config, instance, ["extract"]))
    required = failed["required_fields"].metadata
    assert required["null_counts"].value == {"customer_id": 0, "last_name": 10}
    assert required["null_rates_percent"].value == {"customer_id": 0.0, "last_name": 3.33}
    assert required["threshold"].value == 0
    assert len(required["sample_ids"].value["last_name"]) == 5
    assert failed["unique_ids"].metadata["sample_ids"].value["long_ids"] == ["C" * 39]


def test_records_lost_between_stages(config, local_env, instance):
    seeded(config, local_env)
    extract = run(config, instance, ["extract"])
    assert extract.success
    # The extract's files lose records after it was checked (a partial rewrite, a lifecycle rule).
    part = (
        local_paths()["objects"]
        / f"er-data-lake/entity-resolution/{DOMAIN}/extract/partition={PARTITION}"
        / f"run={extract.run_id}"
    )
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{part}/data_0.parquet') LIMIT 250) TO '{part}/short.parquet'")
    con.close()
    (part / "short.parquet").replace(part / "data_0.parquet")

    result = run(config, instance, ["matched", "loaded"])
    lost = failures(result)["no_data_loss"]
    assert "records lost between stages: {'input_vs_extracted': -50, 'output_vs_extracted': -50}" in lost.description
    assert lost.metadata["extracted"].value == 300
    assert target() == []
    assert exit_code_for(result)[0] == exit_codes.DQ_GATE_FAILED


def test_values_that_arrive_empty_in_the_target_fail_no_value_loss(config, local_env, instance):
    """Arabic and Hebrew last names that the matching step hands back empty (a normaliser that
    maps letters outside a-z to nothing) are noticed, though every record arrives."""
    seeded(config, local_env)
    local_sql(
        "UPDATE customers_source SET last_name = CASE WHEN customer_id LIKE '%1' THEN 'כהן' ELSE 'الحسيني' END "
        "WHERE customer_id IN (SELECT customer_id FROM customers_source ORDER BY customer_id LIMIT 10)"
    )
    assert run(config, instance, ["extract", "matched"]).success
    (output,) = (local_paths()["objects"] / "er-data-lake").rglob("success/*.csv")
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (CASE WHEN regexp_matches(last_name, '[^ -~]') THEN NULL ELSE last_name END "
        f"AS last_name) FROM read_csv('{output}', header = true, all_varchar = true)) TO '{output}.new' (HEADER)"
    )
    con.close()
    Path(f"{output}.new").replace(output)

    result = run(config, instance, ["loaded"])
    lost = failures(result)["no_value_loss"]
    assert lost.description.startswith(f"last_name: {RECORDS} non-empty values extracted, {RECORDS - 10} in the target")
    assert lost.metadata["lost_values"].value == {"last_name": 10}
    assert exit_code_for(result)[0] == exit_codes.DQ_GATE_FAILED


def test_clean_data_passes_every_check(config, local_env, instance):
    seeded(config, local_env)
    result = run(config, instance)
    assert result.success
    evaluated = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    expected = {(stage, name) for stage in STAGES for name in checks.check_names(config.domain(DOMAIN), stage)}
    # The first partition has no history: the history checks say they did not judge, as warnings.
    unjudged = {("extract", "record_count_anomaly"), ("matched", "match_rate_baseline")}
    assert evaluated == {key: key not in unjudged for key in expected}
    for evaluation in result.get_asset_check_evaluations():
        if (evaluation.asset_key.path[-1], evaluation.check_name) in unjudged:
            assert evaluation.severity == dg.AssetCheckSeverity.WARN and not judged(evaluation)
            assert evaluation.description.startswith("not judged: 0 of 5 partitions of history")
    assert len(target()) == RECORDS and all(match_id for _, match_id in target())


# --- through the bridge, as AutoSys runs it -----------------------------------------------------------


def test_bridge_exit_three_for_too_few_rows(config, local_env):
    seeded(config, local_env, records=20)
    done = bridge("all")
    assert done.returncode == exit_codes.DQ_GATE_FAILED, done.stderr[-2000:]
    assert "customers/extract:min_records" in done.stderr
    assert target() == []


def test_bridge_exit_three_for_a_missing_column(config, local_env):
    seeded(config, local_env)
    local_sql("ALTER TABLE customers_source DROP COLUMN last_name")
    done = bridge("all")
    assert done.returncode == exit_codes.DQ_GATE_FAILED, done.stderr[-2000:]
    assert "customers/extract:source_schema" in done.stderr and "last_name: missing" in done.stderr
    assert "Traceback" not in done.stderr
    assert target() == []


def test_a_bad_rerun_leaves_the_previous_good_rows_and_loaded_alone_refuses(config, local_env, disk_instance):
    seeded(config, local_env)
    assert run(config, disk_instance).success
    good = target()
    match_rate_too_high(config, local_env, None, disk_instance)
    done = bridge("all")
    assert done.returncode == exit_codes.DQ_GATE_FAILED, done.stderr[-2000:]
    assert "customers/matched:match_rate" in done.stderr
    assert target() == good
    # A later run of the load alone refuses while matched's latest result is failing.
    code, reason = exit_code_for(run(config, disk_instance, ["loaded"]))
    assert code == exit_codes.DQ_GATE_FAILED
    assert reason.endswith(
        f"GateClosed: gate closed: customers/matched partition {PARTITION} failed data-quality checks (match_rate: "
        "100.0% of 300 records share their MatchID with another record; expected [5.0, 60.0]% (dq.min_match_rate, "
        "dq.max_match_rate)). Fix the data and re-run matched, or, having reviewed it, re-run with override_gate "
        "and a reason (autosys-bridge run ... --override-gate --reason TEXT)"
    )
    assert target() == good


# --- the gate across runs ----------------------------------------------------------------------------


def test_gate_refuses_a_later_run_until_overridden_with_a_reason(config, local_env, disk_instance):
    seeded(config, local_env, records=20)
    assert exit_code_for(run(config, disk_instance, ["extract"]))[0] == exit_codes.DQ_GATE_FAILED

    refused = bridge("process")
    assert refused.returncode == exit_codes.DQ_GATE_FAILED, refused.stderr[-2000:]
    assert (
        "gate closed: customers/extract partition 2026-11-28 failed data-quality checks (min_records: "
        in refused.stderr
    )
    assert not (local_paths()["emulator"] / "jobs").exists()  # no matching job was started

    unexplained = run(
        config,
        disk_instance,
        ["matched"],
        run_config={"ops": {f"{DOMAIN}__matched": {"config": {"override_gate": True, "check_interval": 1}}}},
    )
    assert "override_gate needs override_reason" in exit_code_for(unexplained)[1]

    overridden = bridge("process", "--override-gate", "--reason", "INC-42: small day, reviewed by data owner")
    assert overridden.returncode == exit_codes.OK, overridden.stderr[-2000:]
    assert "GATE OVERRIDDEN by" in overridden.stderr and "INC-42" in overridden.stderr
    record = disk_instance.fetch_materializations(dg.AssetKey([DOMAIN, "matched"]), limit=1).records[0]
    override = record.asset_materialization.metadata["gate_override"].value
    assert override["reason"] == "INC-42: small day, reviewed by data owner" and override["by"]
    assert list(override["failed_checks"]) == ["min_records"]

    # matched passed its own checks, so the load's gate is open; the extract's stays closed.
    assert run(config, disk_instance, ["loaded"]).success
    assert len(target()) == 20


def test_gate_reopens_when_the_upstream_is_rerun_with_good_data(config, local_env, instance):
    seeded(config, local_env, records=20)
    run(config, instance, ["extract"])
    assert exit_code_for(run(config, instance, ["matched"]))[0] == exit_codes.DQ_GATE_FAILED
    seeded(config, local_env)
    assert run(config, instance, ["extract"]).success
    assert run(config, instance, ["matched", "loaded"]).success
    assert len(target()) == RECORDS


# --- severity and history ----------------------------------------------------------------------------


def test_a_warning_is_reported_but_blocks_nothing(local_env, tmp_path, instance):
    path = write_config(tmp_path, lambda raw: raw["domains"][DOMAIN]["dq"].update(severity={"value_formats": "WARN"}))
    config = load_config(path)
    malformed_emails(config, local_env, tmp_path, instance)
    result = run(config, instance)
    warned = failures(result)
    assert list(warned) == ["value_formats"] and warned["value_formats"].severity == dg.AssetCheckSeverity.WARN
    assert result.success and exit_code_for(result)[0] == exit_codes.OK
    assert len(target()) == RECORDS


def test_match_rate_against_its_baseline(config):
    domain = config.domain(DOMAIN)
    summary = {"records": 1000, "match_ids": 700, "matched_records": 380, "match_rate": 38.0}
    metrics = {"inputRecords": 1000, "recordsNotProcessed": 0}
    history = {f"2026-11-{day}": rate for day, rate in zip(range(20, 27), (30, 31, 29, 30, 32, 30, 28))}

    def baseline(rate, history):
        results = checks.matched_results(domain, 1000, metrics, {**summary, "match_rate": rate}, 0, history)
        return next(r for r in results if r.check_name == "match_rate_baseline")

    assert baseline(38.0, history).passed
    drop = baseline(12.0, history)
    assert not drop.passed
    assert drop.description.startswith(
        "match rate 12.0 outside [15, 45], the trailing median 30 of 7 earlier partitions"
    )
    young = baseline(12.0, dict(list(history.items())[:2]))
    assert not young.passed and young.severity == dg.AssetCheckSeverity.WARN  # shown as a warning, blocks nothing
    assert young.description.startswith("not judged: 2 of 5 partitions of history (dq.anomaly.min_history)")
    assert young.metadata["judged"].value is False and baseline(38.0, history).metadata["judged"].value is True
    assert checks.blocking_failures([young, drop]) == ["match_rate_baseline"] and drop.severity.value == "ERROR"


def test_medians_use_only_earlier_partitions_that_passed_their_checks(config, instance):
    """Two blocked empty extracts would drag the median of [200, 0, 0, 200] to 100; left out,
    the median of the passing days is 200, and a day that only passed before the flag existed
    still counts."""
    from er_assets.pipeline.baselines import earlier_values

    key = dg.AssetKey([DOMAIN, "extract"])
    days = {
        "2026-11-23": (200, None),
        "2026-11-24": (200, True),
        "2026-11-25": (0, False),
        "2026-11-26": (0, False),
        "2026-11-27": (210, True),
    }
    for day, (rows, passed) in days.items():
        metadata = {"rows": rows} if passed is None else {"rows": rows, "checks_passed": passed}
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day, metadata=metadata))
    # A re-run of 2026-11-24 that failed its checks replaces the day's good value: it no longer counts.
    history = earlier_values(instance, key, config.domain(DOMAIN), PARTITION, "rows")
    assert history == {"2026-11-23": 200, "2026-11-24": 200, "2026-11-27": 210}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(key, partition="2026-11-24", metadata={"rows": 5, "checks_passed": False})
    )
    assert earlier_values(instance, key, config.domain(DOMAIN), PARTITION, "rows") == {
        "2026-11-23": 200,
        "2026-11-27": 210,
    }


@pytest.mark.parametrize(
    "dq, message",
    [
        ({"severity": {"no_such_check": "WARN"}}, "'no_such_check' is not a check"),
        ({"severity": {"source_schema": "WARN"}}, "source_schema cannot be a warning"),
        ({"severity": {"match_rate": "INFO"}}, "dq.severity.match_rate"),
        ({"value_formats": {"NAME_FIRST": "[A-Z]+"}}, "'NAME_FIRST' has no format check"),
        ({"value_formats": {"EMAIL_ADDRESS": "[a-z"}}, "is not a regular expression"),
    ],
)
def test_check_settings_are_validated(tmp_path, dq, message):
    path = write_config(tmp_path, lambda raw: raw["domains"][DOMAIN]["dq"].update(dq))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_no_value_loss_without_the_extract_s_counts_is_not_judged_never_a_pass(config):
    result = checks.no_value_loss(config.domain("customers"), None, {"last_name": 3})
    assert not result.passed and result.severity.value == "WARN"
    assert result.description.startswith("not judged") and result.metadata["judged"].value is False


def test_identity_checks_judge_what_the_registry_update_did(config):
    from er_assets.resources.warehouses.base import IdentityFigures

    domain = config.domain("customers")
    quiet = IdentityFigures(
        records=200,
        without_entity=0,
        created=150,
        absorbed_records=40,
        merged=1,
        split=0,
        churn=2,
        replayed=(),
        oversized=(),
    )
    results = {r.check_name: r for r in checks.identity_results(domain, quiet, {"2026-11-01": 0.5, "2026-11-02": 1.5})}
    assert all(r.passed for r in results.values())
    assert "1.0% of the partition's 200" in results["entity_churn"].description
    assert "trailing median of 2 earlier partitions is 1%" in results["entity_churn"].description
    churning = IdentityFigures(
        records=200,
        without_entity=3,
        created=150,
        absorbed_records=40,
        merged=9,
        split=4,
        churn=41,
        replayed=(),
        oversized=(("Eglue", 812), ("Eother", 600)),
    )
    results = {r.check_name: r for r in checks.identity_results(domain, churning)}
    assert not results["entity_assigned"].passed and results["entity_assigned"].metadata["observed"].value == 3
    assert not results["entity_churn"].passed  # 20.5% of the records, above identity.max_churn_rate 20
    assert not results["oversized_entities"].passed
    assert "the largest Eglue with 812" in results["oversized_entities"].description
    assert checks.blocking_failures(results.values()) == ["entity_assigned", "entity_churn", "oversized_entities"]
