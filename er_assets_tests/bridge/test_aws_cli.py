"""`autosys-bridge aws export`: requests valid against botocore's model, a template cfn-lint passes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.validate import ParamValidator

from er_assets import layout
from er_assets.config import load_config
from er_assets.emulator.model import problems, service_model
from er_assets.ops.cloudformation import TEMPLATE_NAME, template
from er_assets_tests.helpers import write_config

MODEL = service_model("entityresolution")
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def bridge(*args):
    return subprocess.run(
        [sys.executable, "-m", "autosys_bridge.cli", *args], capture_output=True, text=True, timeout=60
    )


def invalid(operation: str, request: dict) -> list[str]:
    """Everything botocore's model says is wrong with the request (its own validation plus
    the patterns, enums and maximums it does not check)."""
    shape = MODEL.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return ([report.generate_report()] if report.has_errors() else []) + problems(shape, request)


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", str(path)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def kms_config(tmp_path):
    return load_config(write_config(tmp_path, lambda raw: raw["settings"].update(kms_key_arn=KMS)))


def test_every_domain_exports_requests_the_model_accepts_and_a_template_cfn_lint_passes(tmp_path):
    done = bridge("aws", "export", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    for domain in ("customers", "products", "vendors"):
        schema = json.loads((out / domain / "create-schema-mapping.json").read_text())
        workflow = json.loads((out / domain / "create-matching-workflow.json").read_text())
        assert invalid("CreateSchemaMapping", schema) == []
        assert invalid("CreateMatchingWorkflow", workflow) == []
        assert workflow["inputSourceConfig"][0]["schemaName"] == schema["schemaName"]
    result = lint(out / TEMPLATE_NAME)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_would_catch_a_bad_request(tmp_path, config):
    from er_assets.emulator.aws_shapes import matching_workflow_request

    request = matching_workflow_request(config.domain("customers"), config.settings)
    request["resolutionTechniques"]["ruleBasedProperties"]["attributeMatchingModel"] = "SOME_TO_SOME"
    del request["roleArn"]
    found = invalid("CreateMatchingWorkflow", request)
    assert any("roleArn" in p for p in found) and any("SOME_TO_SOME" in p for p in found)
    bad = tmp_path / "bad.json"
    body = template(config, [config.domain("customers")])
    body["Resources"]["CustomersMatchingWorkflow"]["Properties"]["ResolutionTechniques"]["RuleBasedProperties"][
        "AttributeMatchingModel"
    ] = "SOME_TO_SOME"
    bad.write_text(json.dumps(body))
    assert lint(bad).returncode != 0


def test_the_template_deploys_exactly_the_requests(config):
    from er_assets.emulator.aws_shapes import matching_workflow_request, schema_mapping_request

    domain = config.domain("vendors")
    resources = template(config, [domain])["Resources"]
    schema = resources["VendorsSchemaMapping"]["Properties"]
    assert schema["MappedInputFields"][1] == {
        "FieldName": "vendor_name",
        "Type": "NAME",
        "MatchKey": "name",
        "Hashed": False,
    }
    assert schema["SchemaName"] == schema_mapping_request(domain, config.settings)["schemaName"]
    workflow = resources["VendorsMatchingWorkflow"]["Properties"]
    request = matching_workflow_request(domain, config.settings)
    assert workflow["ResolutionTechniques"]["RuleBasedProperties"]["Rules"][0] == {
        "RuleName": request["resolutionTechniques"]["ruleBasedProperties"]["rules"][0]["ruleName"],
        "MatchingKeys": request["resolutionTechniques"]["ruleBasedProperties"]["rules"][0]["matchingKeys"],
    }
    assert workflow["OutputSourceConfig"][0]["OutputS3Path"] == layout.output_prefix(domain)
    assert workflow["InputSourceConfig"][0]["SchemaArn"] == {"Fn::GetAtt": ["VendorsSchemaMapping", "SchemaArn"]}
    table = resources["VendorsGlueTable"]["Properties"]["TableInput"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == domain.schema.columns
    role = resources["WorkflowRole"]["Properties"]
    assert role["RoleName"] == config.settings.role_arn.rsplit("/", 1)[1]


def test_the_role_is_least_privilege(config):
    role = template(config, list(config.domains.values()))["Resources"]["WorkflowRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "entityresolution.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    text = json.dumps(statements)
    assert '"*"' not in text and "s3:*" not in text and "glue:*" not in text
    assert "glue:UpdateTable" not in text and "s3:DeleteObject" not in text  # the pipeline's job, not the service's
    writes = [r["Fn::Sub"] for r in statements["WriteOutput"]["Resource"]]
    assert writes == [f"arn:${{AWS::Partition}}:s3:::{d.bucket}/{d.prefix}/output/*" for d in config.domains.values()]
    reads = [r["Fn::Sub"] for r in statements["ReadExtracts"]["Resource"]]
    assert all(r.endswith("/extract/*") for r in reads)
    assert "UseBucketKey" not in statements  # no customer key configured


def test_a_configured_kms_key_is_used_by_the_workflow_and_granted_to_the_role(tmp_path, kms_config):
    from er_assets.emulator.aws_shapes import matching_workflow_request
    from er_assets.ops.cloudformation import export

    request = matching_workflow_request(kms_config.domain("customers"), kms_config.settings)
    assert request["outputSourceConfig"][0]["KMSArn"] == KMS
    assert invalid("CreateMatchingWorkflow", request) == []
    export(kms_config, list(kms_config.domains.values()), tmp_path)
    body = json.loads((tmp_path / TEMPLATE_NAME).read_text())
    statements = body["Resources"]["WorkflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {
        "Sid": "UseBucketKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": KMS,
    } in statements
    assert body["Resources"]["CustomersMatchingWorkflow"]["Properties"]["OutputSourceConfig"][0]["KMSArn"] == KMS
    result = lint(tmp_path / TEMPLATE_NAME)
    assert result.returncode == 0, result.stdout


def test_one_domain_and_a_bad_domain(tmp_path):
    done = bridge("aws", "export", "--domain", "vendors", "-o", str(tmp_path / "one"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [TEMPLATE_NAME, "vendors"]
    body = json.loads((tmp_path / "one" / TEMPLATE_NAME).read_text())
    assert not any(k.startswith("Customers") for k in body["Resources"])
    done = bridge("aws", "export", "--domain", "nope", "-o", str(tmp_path / "none"))
    assert done.returncode == 2 and "Domain 'nope' not found" in done.stderr
    assert not (tmp_path / "none").exists()
