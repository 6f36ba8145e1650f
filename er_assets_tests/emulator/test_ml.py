"""ML_MATCHING on the local emulator: output shape, ConfidenceLevel, determinism, refusals,
the confidence checks, and the shipped example domain end to end."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
from pathlib import Path

import duckdb
import pytest

from er_assets.config import ConfigError, load_config
from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response
from er_assets.emulator.cli import main as er_match
from er_assets.emulator.matching import MatchingError, run_matching
from er_assets.ops.sample_data import generate_sql
from er_assets.pipeline import checks
from er_assets.resources.warehouses.local import confidence_summary
from er_assets_tests.helpers import ML_EXAMPLE as EXAMPLE

RECORDS = 1000


@pytest.fixture(scope="module")
def example():
    config = load_config(EXAMPLE)
    return config, config.domain("customers_ml")


@pytest.fixture(scope="module")
def documents(example):
    config, domain = example
    return schema_mapping_response(domain, config.settings), matching_workflow_response(domain, config.settings)


@pytest.fixture(scope="module")
def customers(example, tmp_path_factory):
    """RECORDS generated customers (20% noisy duplicates) with their true entity, as parquet."""
    _, domain = example
    folder = tmp_path_factory.mktemp("ml-input")
    params = {
        "n": RECORDS,
        "entities": int(RECORDS * 0.8),
        "seed": 11,
        "start": dt.date(2026, 1, 1),
        "days": 1,
        "id_offset": 0,
    }
    con = duckdb.connect()
    con.execute(f"COPY ({generate_sql(domain)}) TO '{folder / 'all.parquet'}' (FORMAT parquet)", params)
    con.close()
    return folder / "all.parquet"


@pytest.fixture(scope="module")
def job(customers, documents, tmp_path_factory):
    schema, workflow = documents
    out = tmp_path_factory.mktemp("ml-job") / "job"
    metrics = run_matching(customers, schema, workflow, out, "j1")
    return out, metrics


def read_output(job_dir: Path) -> tuple[list[str], list[dict]]:
    rows, header = [], []
    for part in sorted((job_dir / "success").glob("*.csv")):
        with part.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            rows += list(reader)
    return header, rows


def test_output_has_the_ml_shape(job, documents):
    out, metrics = job
    schema, _ = documents
    header, rows = read_output(out)
    columns = [f["fieldName"] for f in schema["mappedInputFields"]]
    assert header == ["InputSourceARN", "RecordId", "MatchID", "ConfidenceLevel", *columns]  # no MatchRule
    assert len(rows) == metrics["inputRecords"] == metrics["totalRecordsProcessed"] == RECORDS
    assert metrics["recordsNotProcessed"] == 0 and not list((out / "error").glob("*.csv"))
    assert all(len(r["MatchID"]) == 32 for r in rows)
    assert metrics["matchIDs"] == len({r["MatchID"] for r in rows}) < RECORDS


def test_confidence_level_is_a_group_value_in_0_1_on_matched_records_only(job):
    _, rows = read_output(job[0])
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[r["MatchID"]] = sizes.get(r["MatchID"], 0) + 1
    per_group: dict[str, set] = {}
    for r in rows:
        if sizes[r["MatchID"]] == 1:
            assert r["ConfidenceLevel"] == ""  # a record that matched no other has none
        else:
            value = float(r["ConfidenceLevel"])
            assert 0.5 <= value <= 1.0  # linked pairs are more likely matches than not
            per_group.setdefault(r["MatchID"], set()).add(value)
    assert per_group and all(len(values) == 1 for values in per_group.values())


def test_groups_find_the_true_duplicates(job, customers):
    con = duckdb.connect()
    precision, recall = con.execute(
        f"""
        WITH t AS (SELECT customer_id AS RecordId, true_entity FROM '{customers}'),
             o AS (SELECT RecordId, MatchID FROM read_csv('{job[0] / "success" / "*.csv"}', all_varchar = true)),
             j AS (SELECT * FROM t JOIN o USING (RecordId)),
             pairs AS (SELECT
                 (SELECT sum(n * (n - 1) / 2) FROM (SELECT count(*) n FROM j GROUP BY true_entity)) AS truth,
                 (SELECT sum(n * (n - 1) / 2) FROM (SELECT count(*) n FROM j GROUP BY MatchID)) AS found,
                 (SELECT sum(n * (n - 1) / 2) FROM (SELECT count(*) n FROM j GROUP BY MatchID, true_entity)) AS ok)
        SELECT ok / found, ok / truth FROM pairs
        """
    ).fetchone()
    assert precision > 0.95 and recall > 0.8


def test_same_input_same_output_whatever_the_file_order(job, customers, documents, tmp_path):
    schema, workflow = documents
    shuffled = tmp_path / "shuffled.parquet"
    duckdb.connect().execute(f"COPY (SELECT * FROM '{customers}' ORDER BY md5(customer_id)) TO '{shuffled}'")
    run_matching(shuffled, schema, workflow, tmp_path / "again", "j2")
    first = sorted(tuple(r.values()) for r in read_output(job[0])[1])
    again = sorted(tuple(r.values()) for r in read_output(tmp_path / "again")[1])
    assert first == again


def test_a_workflow_with_rules_is_refused(documents, customers, tmp_path):
    schema, workflow = documents
    bad = {
        **workflow,
        "resolutionTechniques": {
            "resolutionType": "ML_MATCHING",
            "ruleBasedProperties": {"rules": [{"ruleName": "r", "matchingKeys": ["email"]}]},
        },
    }
    with pytest.raises(MatchingError, match="an ML_MATCHING workflow takes no ruleBasedProperties"):
        run_matching(customers, schema, bad, tmp_path / "out", "j")
    no_keys = {
        **schema,
        "mappedInputFields": [{k: v for k, v in f.items() if k != "matchKey"} for f in schema["mappedInputFields"]],
    }
    with pytest.raises(MatchingError, match="no schema field has a matchKey"):
        run_matching(customers, no_keys, workflow, tmp_path / "out", "j")


def test_the_configuration_refuses_rules_on_an_ml_domain(tmp_path):
    text = EXAMPLE.read_text().replace(
        "resolutionType: ML_MATCHING",
        "resolutionType: ML_MATCHING\n      ruleBasedProperties: {rules: [{ruleName: r, matchingKeys: [email]}]}",
    )
    path = tmp_path / "ml.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"customers_ml.*takes no ruleBasedProperties"):
        load_config(path)


def test_er_match_without_the_model_library_exits_2_in_one_line(monkeypatch, customers, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "splink" else real(name, *a))
    code = er_match(
        [
            "--domain",
            "customers_ml",
            "--config",
            str(EXAMPLE),
            "--input",
            str(customers),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "needs the optional dependency splink: pip install 'er-pipelines[ml]'" in err
    assert not (tmp_path / "out").exists()


def test_er_match_runs_an_ml_domain_and_rejects_bad_ids_as_rule_based_jobs_do(customers, tmp_path, capsys):
    """Same metrics and error folder as a rule-based job: an empty id and a repeated one."""
    bad = tmp_path / "with-bad-ids.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT * FROM '{customers}' UNION ALL (SELECT * REPLACE ('' AS customer_id) FROM '{customers}' "
        f"LIMIT 1) UNION ALL (SELECT * FROM '{customers}' ORDER BY customer_id LIMIT 1) "
        # Over 38 characters: rejected by rule-based workflows only.
        f"UNION ALL (SELECT * REPLACE (repeat('L', 45) AS customer_id) FROM '{customers}' LIMIT 1)) TO '{bad}'"
    )
    code = er_match(
        [
            "--domain",
            "customers_ml",
            "--config",
            str(EXAMPLE),
            "--input",
            str(bad),
            "--output",
            str(tmp_path / "out"),
            "--job-id",
            "a" * 32,
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["inputRecords"], summary["recordsNotProcessed"]) == (RECORDS + 3, 3)
    assert summary["totalRecordsProcessed"] == RECORDS and 0 < summary["matchIDs"] < RECORDS
    job = Path(summary["output"])
    header, rows = read_output(job)
    assert header[3] == "ConfidenceLevel" and "L" * 45 in {r["RecordId"] for r in rows}
    with next((job / "error").glob("*.csv")).open(newline="") as fh:
        errors = sorted(r["ErrorMessage"] for r in csv.DictReader(fh))
    assert errors == ["Unique ID is missing", "Unique ID is not unique", "Unique ID is not unique"]


def test_min_confidence_judges_the_matched_records(job, example):
    _, domain = example
    summary = confidence_summary(job[0] / "success", 0.9)
    assert summary["present"] and summary["with_confidence"] == summary["matched_records"] > 0
    assert 0.5 <= summary["min"] <= summary["mean"] <= 1.0

    def judged(threshold, max_rate, summary):
        dq = domain.dq.model_copy(
            update={
                "min_confidence": domain.dq.min_confidence.model_copy(
                    update={"threshold": threshold, "max_rate": max_rate}
                )
            }
        )
        return {r.check_name: r for r in checks._confidence(domain.model_copy(update={"dq": dq}), summary, {})}

    assert judged(0.5, 0, confidence_summary(job[0] / "success", 0.5))["min_confidence"].passed
    strict = confidence_summary(job[0] / "success", 1.0)
    failed = judged(1.0, 0, strict)["min_confidence"]
    assert not failed.passed and "below 1.0" in failed.description
    assert failed.metadata["sample_ids"].value and strict["below_threshold"] > 0
    # An output without ConfidenceLevel (a rule-based one) fails the ML checks, saying why.
    missing = judged(0.9, 5, {**summary, "present": False})
    assert not missing["min_confidence"].passed and "no ConfidenceLevel column" in missing["min_confidence"].description


def test_confidence_baseline_uses_the_history(example):
    _, domain = example
    summary = {
        "present": True,
        "matched_records": 10,
        "with_confidence": 10,
        "below_threshold": 0,
        "out_of_range": 0,
        "mean": 0.6,
        "min": 0.55,
        "sample_ids": [],
    }
    history = {f"2026-11-{d:02d}": 0.97 for d in range(1, 8)}
    tight = domain.dq.model_copy(update={"anomaly": domain.dq.anomaly.model_copy(update={"max_deviation": 0.1})})
    results = {r.check_name: r for r in checks._confidence(domain.model_copy(update={"dq": tight}), summary, history)}
    assert not results["confidence_baseline"].passed
    assert results["confidence_baseline"].metadata["median"].value == 0.97
    assert checks._confidence(domain, {**summary, "mean": 0.95}, history)[1].passed
    # No matched record, no mean: not judged, which is a warning that says so, never a pass.
    unjudged = checks._confidence(
        domain, {**summary, "matched_records": 0, "with_confidence": 0, "mean": None}, history
    )[1]
    assert not unjudged.passed and unjudged.severity.value == "WARN"
    assert unjudged.description.startswith("not judged") and unjudged.metadata["judged"].value is False


def test_rule_based_domains_have_no_confidence_checks(config):
    assert "min_confidence" not in checks.check_names(config.domain("customers"), "matched")


def test_the_example_ml_domain_end_to_end(local_env, monkeypatch):
    """extract -> matched -> loaded through the emulator's job lifecycle (QUEUED, RUNNING,
    SUCCEEDED in a worker process) with every check of every stage passing."""
    import dagster as dg

    from er_assets.defs.definitions import build_definitions
    from er_assets.environment import local_paths
    from er_assets_tests.helpers import seed

    monkeypatch.setenv("ER_CONFIG", str(EXAMPLE))
    config = load_config(EXAMPLE)
    seed(config.domain("customers_ml"), "2026-11-28", RECORDS, local_env)
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key="2026-11-28",
            raise_on_error=False,
            asset_selection=[dg.AssetKey(["customers_ml", s]) for s in ("extract", "matched", "loaded")],
        )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {"min_confidence", "confidence_baseline", "match_rate"} <= set(evaluations)
    # Every check passes, but the history checks, which cannot judge a first partition yet.
    history_checks = {"record_count_anomaly", "match_rate_baseline", "confidence_baseline"}
    assert {name for name, e in evaluations.items() if not e.passed} == history_checks
    assert all(evaluations[name].metadata["judged"].value is False for name in history_checks)
    meta = result.asset_materializations_for_node("customers_ml__matched")[0].metadata
    assert 0.5 <= meta["mean_confidence"].value <= 1.0 and meta["output_rows"].value == RECORDS
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers_ml_resolved'"
        ).fetchall()
    ]
    loaded = con.execute('SELECT count(*), count("MatchID") FROM customers_ml_resolved').fetchone()
    con.close()
    assert "ConfidenceLevel" in columns and "MatchRule" not in columns
    assert loaded == (RECORDS, RECORDS)


def test_long_ids_do_not_fail_the_extract_of_an_ml_domain(example, config):
    """The service rejects ids over 38 characters in rule-based workflows only."""
    profile = {
        "empty_ids": 0,
        "duplicate_ids": 0,
        "long_ids": 2,
        "sample_ids": {"duplicate_ids": [], "long_ids": ["x" * 40]},
    }
    assert checks._unique_ids(example[1], profile).passed
    assert not checks._unique_ids(config.domain("customers"), profile).passed


@pytest.mark.parametrize("records", [1, 2, 5])
def test_tiny_jobs_run(documents, tmp_path, records):
    """Too few pairs to estimate anything from: the model still runs and writes valid output."""
    schema, workflow = documents
    rows = [
        ("C1", "Ann", "Lee", "ann@x.com", "555 111 2222"),
        ("C2", "Anne", "Lee", "ann@x.com", ""),
        ("C3", "Bo", "Kim", "bo@y.com", "555-999-0000"),
        ("C4", "Bob", "Kim", "", "(555) 999-0000"),
        ("C5", "Cy", "Ng", "cy@z.com", ""),
    ][:records]
    path = tmp_path / "tiny.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f["fieldName"] for f in schema["mappedInputFields"]])
        writer.writerows(row + ("", "", "", "") for row in rows)
    metrics = run_matching(path, schema, workflow, tmp_path / "out", "tiny")
    _, out = read_output(tmp_path / "out")
    assert metrics["totalRecordsProcessed"] == len(out) == records
    assert all(r["ConfidenceLevel"] == "" or 0.0 <= float(r["ConfidenceLevel"]) <= 1.0 for r in out)


@pytest.mark.parametrize("operation", ["GetSchemaMapping", "GetMatchingWorkflow"])
def test_the_ml_domain_documents_have_the_model_shape(example, operation):
    from botocore.validate import ParamValidator

    from er_assets_tests.helpers import MODEL, check_patterns

    config, domain = example
    build = schema_mapping_response if operation == "GetSchemaMapping" else matching_workflow_response
    shape = MODEL.operation_model(operation).output_shape
    response = build(domain, config.settings)
    report = ParamValidator().validate(response, shape)
    assert not report.has_errors(), report.generate_report()
    assert check_patterns(response, shape) == []


def test_a_job_nothing_narrows_is_refused_naming_why(tmp_path):
    """Only a state to compare: scoring every pair of the job would never finish."""
    schema = {
        "schemaName": "s",
        "mappedInputFields": [
            {"fieldName": "id", "type": "UNIQUE_ID"},
            {"fieldName": "state", "type": "ADDRESS_STATE", "matchKey": "state"},
        ],
    }
    workflow = {
        "workflowName": "w",
        "inputSourceConfig": [{"inputSourceARN": "arn:aws:glue:us-east-1:123456789012:table/db/t", "schemaName": "s"}],
        "outputSourceConfig": [{"output": [{"name": "id"}]}],
        "resolutionTechniques": {"resolutionType": "ML_MATCHING"},
    }
    path = tmp_path / "states.csv"
    path.write_text("id,state\n" + "".join(f"R{i},{'NY' if i % 2 else 'MA'}\n" for i in range(400)))
    with pytest.raises(MatchingError, match="narrows the 400 records to at most 10000 candidate pairs"):
        run_matching(path, schema, workflow, tmp_path / "out", "j")


def test_doctor_says_when_the_local_model_is_missing(example, monkeypatch):
    from er_assets.ops.doctor import model_checks

    config, _ = example
    assert [(n, ok) for n, ok, _ in model_checks(config)] == [("customers_ml: ML model", True)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "splink" else real(name, *a))
    ((_, ok, message),) = model_checks(config)
    assert not ok and "pip install 'er-pipelines[ml]'" in message
    assert model_checks(load_config()) == []  # rule-based domains need no model
