"""`doctor` compares the deployed schema mappings and workflows with the configuration, field by field."""

import boto3
import pytest
from botocore.stub import Stubber

from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response
from er_assets.ops import doctor
from er_assets.resources.entity_resolution import LocalEntityResolution
from er_assets_tests.helpers import by_name, write_config


def deployed(tmp_path, mutate) -> LocalEntityResolution:
    """The emulator serving a configuration changed by `mutate`: what is "live" in the account."""
    return LocalEntityResolution(
        state_root=str(tmp_path / "emulator"),
        objects_root=str(tmp_path / "objects"),
        config_path=str(write_config(tmp_path, mutate)),
    )


def test_an_account_that_matches_the_configuration_passes(config, tmp_path):
    checks = by_name(doctor.service_checks(config, deployed(tmp_path, lambda raw: None)))
    for domain in config.domains:
        for what in ("glue table", "schema mapping", "matching workflow"):
            assert checks[f"{domain}: {what}"][0], checks[f"{domain}: {what}"]
    assert checks["customers: matching workflow"][1] == "workflow customer-matching-workflow matches the configuration"


def test_every_difference_is_listed_with_its_field(config, tmp_path):
    def drift(raw):
        customers = raw["domains"]["customers"]
        rules = customers["resolution"]["ruleBasedProperties"]["rules"]
        rules[1]["matchingKeys"] = ["name"]  # name_phone_match lost its phone
        rules.append({"ruleName": "email_only", "matchingKeys": ["email"]})
        customers["resolution"]["ruleBasedProperties"]["attributeMatchingModel"] = "MANY_TO_MANY"
        customers["schema"]["mappedInputFields"][4]["type"] = "STRING"  # phone
        customers["prefix"] = "elsewhere/customers"

    checks = by_name(doctor.service_checks(config, deployed(tmp_path, drift)))
    ok, message = checks["customers: matching workflow"]
    assert not ok
    assert message.startswith("RuntimeError: workflow customer-matching-workflow differs from the configuration: ")
    for expected in (
        "resolutionTechniques.ruleBasedProperties.rules[name_phone_match].matchingKeys: deployed ['name'], "
        "configured ['name', 'phone']",
        "resolutionTechniques.ruleBasedProperties.rules[email_only]: deployed, not configured",
        "resolutionTechniques.ruleBasedProperties.attributeMatchingModel: deployed 'MANY_TO_MANY', "
        "configured 'ONE_TO_ONE'",
        "outputSourceConfig[0].outputS3Path: deployed 's3://er-data-lake/elsewhere/customers/output', "
        "configured 's3://er-data-lake/entity-resolution/customers/output'",
    ):
        assert expected in message
    ok, message = checks["customers: schema mapping"]
    assert not ok and "mappedInputFields[phone].type: deployed 'STRING', configured 'PHONE_NUMBER'" in message
    assert checks["vendors: matching workflow"][0] and checks["vendors: schema mapping"][0]


class Stubbed:
    """What doctor needs of the Entity Resolution resource, answering from botocore Stubbers."""

    def __init__(self):
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        self.er, self.glue = session.client("entityresolution"), session.client("glue")

    def clients(self):
        return self.er, self.glue


@pytest.fixture
def stubbed():
    resource = Stubbed()
    with Stubber(resource.er) as er_stub, Stubber(resource.glue) as glue_stub:
        yield resource, er_stub, glue_stub


def test_an_incremental_run_config_and_reordered_rules_deployed_by_hand_are_differences(config, stubbed):
    resource, er_stub, glue_stub = stubbed
    domain = config.domain("customers")
    live = matching_workflow_response(domain, config.settings)
    live["incrementalRunConfig"] = {"incrementalRunType": "IMMEDIATE"}
    live["resolutionTechniques"]["ruleBasedProperties"]["rules"].reverse()  # rules are a waterfall
    live["inputSourceConfig"][0]["applyNormalization"] = False
    config = config.model_copy(update={"domains": {"customers": domain}})
    glue_stub.add_response(
        "get_table",
        {
            "Table": {
                "Name": domain.glue_table,
                "StorageDescriptor": {
                    "Columns": [{"Name": c, "Type": "string"} for c in domain.schema.columns],
                    "Location": "s3://x/y/",
                },
            }
        },
    )
    er_stub.add_response("get_schema_mapping", schema_mapping_response(domain, config.settings))
    er_stub.add_response("get_matching_workflow", live)
    checks = by_name(doctor.service_checks(config, resource))
    assert checks["customers: glue table"][0] and checks["customers: schema mapping"][0]
    ok, message = checks["customers: matching workflow"]
    assert not ok
    assert "incrementalRunConfig: deployed {'incrementalRunType': 'IMMEDIATE'}, not configured" in message
    assert "inputSourceConfig[0].applyNormalization: deployed False, configured True" in message
    assert (
        "rules: deployed in the order ['name_address_match', 'name_phone_match', 'email_match'], configured "
        "['email_match', 'name_phone_match', 'name_address_match']"
    ) in message


def test_differences_treat_absent_and_default_members_as_equal():
    assert doctor.differences({"a": False, "b": [], "matchPurpose": "IDENTIFIER_GENERATION"}, {}) == []
    assert doctor.differences({"x": {"hashed": False, "name": "n"}}, {"x": {"name": "n"}}) == []
    assert doctor.differences({"a": 1}, {"a": 2, "createdAt": "t", "description": "d"}) == [
        "a: deployed 2, configured 1"
    ]
