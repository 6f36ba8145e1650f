"""`er-match`: definitions from JSON or the configuration, the job layout, one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response
from er_assets.emulator.cli import main

ROWS = [
    ("customer_id", "first_name", "last_name", "email", "phone", "address", "city", "state", "postal_code"),
    ("C1", "Ann", "Lee", "ann@x.com", "555 111 2222", "1 Main St", "Boston", "MA", "02101"),
    ("C2", "ANN", "LEE", "Ann@X.com", "", "", "", "", ""),
    ("C3", "Bo", "Kim", "", "555-999-0000", "", "", "", ""),
    ("", "No", "Id", "", "", "", "", "", ""),
]


@pytest.fixture
def customers_csv(tmp_path):
    path = tmp_path / "customers.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(ROWS)
    return path


def _check_job(out_dir, summary):
    job = out_dir / "customer-matching-workflow" / summary["jobId"]
    assert summary["output"] == str(job)
    assert len(summary["jobId"]) == 32
    assert (summary["inputRecords"], summary["recordsNotProcessed"], summary["matchIDs"]) == (4, 1, 2)
    with next((job / "success").glob("*.csv")).open() as fh:
        rows = {r["RecordId"]: r for r in csv.DictReader(fh)}
    assert rows["C1"]["MatchID"] == rows["C2"]["MatchID"] != rows["C3"]["MatchID"]
    assert rows["C1"]["MatchRule"] == "email_match"
    assert len(list((job / "error").glob("*.csv"))) == 1


def test_domain_from_the_configuration(tmp_path, customers_csv, capsys):
    code = main(["--domain", "customers", "--input", str(customers_csv), "--output", str(tmp_path / "out")])
    assert code == 0
    _check_job(tmp_path / "out", json.loads(capsys.readouterr().out))


def test_exported_aws_documents(tmp_path, customers_csv, capsys, config):
    domain = config.domain("customers")
    (tmp_path / "wf.json").write_text(json.dumps(matching_workflow_response(domain, config.settings), default=str))
    (tmp_path / "schema.json").write_text(json.dumps(schema_mapping_response(domain, config.settings), default=str))
    code = main(
        [
            "--workflow",
            str(tmp_path / "wf.json"),
            "--schema",
            str(tmp_path / "schema.json"),
            "--input",
            str(customers_csv),
            "--output",
            str(tmp_path / "out"),
            "--job-id",
            "a" * 32,
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["jobId"] == "a" * 32
    _check_job(tmp_path / "out", summary)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domain", "nope"], "Domain 'nope' not found in configuration"),
        (["--workflow", "missing.json", "--schema", "missing.json"], "cannot read schema missing.json"),
        (["--workflow", "x.json"], "give --workflow and --schema"),
        (["--domain", "customers", "--schema", "x.json"], "not both"),
        (["--domain", "customers", "--input", "nowhere/*.csv"], "no input data at nowhere/*.csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, customers_csv, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    argv = ["--input", str(customers_csv), "--output", "out", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("er-match: error: ") and message in err and err.count("\n") == 1


def test_invalid_documents_are_reported_without_traceback(tmp_path, customers_csv):
    (tmp_path / "wf.json").write_text(json.dumps({"workflowName": "w", "resolutionTechniques": {}}))
    (tmp_path / "schema.json").write_text("{not json")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "er_assets.emulator.cli",
            "--workflow",
            str(tmp_path / "wf.json"),
            "--schema",
            str(tmp_path / "schema.json"),
            "--input",
            str(customers_csv),
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("er-match: error: schema") and "Traceback" not in proc.stderr
    (tmp_path / "schema.json").write_text(json.dumps({"schemaName": "s", "mappedInputFields": []}))
    assert (
        main(
            [
                "--workflow",
                str(tmp_path / "wf.json"),
                "--schema",
                str(tmp_path / "schema.json"),
                "--input",
                str(customers_csv),
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )


def test_a_workflow_the_service_model_rejects_is_refused(tmp_path, customers_csv, capsys, config):
    domain = config.domain("customers")
    workflow = matching_workflow_response(domain, config.settings)
    rules = workflow["resolutionTechniques"]["ruleBasedProperties"]
    rules["rules"] = rules["rules"] * 9  # 27 rules: the model allows 25
    paths = {}
    for name, doc in (("workflow", workflow), ("schema", schema_mapping_response(domain, config.settings))):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(doc, default=str))
    code = main(
        [
            "--workflow",
            str(paths["workflow"]),
            "--schema",
            str(paths["schema"]),
            "--input",
            str(customers_csv),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert (
        "er-match: error: workflow.resolutionTechniques.ruleBasedProperties.rules: the number of items must be "
        "between 1 and 25, not 27"
    ) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
