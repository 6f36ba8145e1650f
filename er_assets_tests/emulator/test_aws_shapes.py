"""The emulator's GetSchemaMapping / GetMatchingWorkflow responses against botocore's model."""

from __future__ import annotations

import numpy as np
import pytest
from botocore.validate import ParamValidator

from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response
from er_assets.emulator.components import connected_components
from er_assets_tests.helpers import MODEL, check_patterns


@pytest.mark.parametrize("domain_name", ["customers", "products", "vendors"])
@pytest.mark.parametrize(
    ("operation", "build"),
    [
        ("GetSchemaMapping", lambda d, s: schema_mapping_response(d, s)),
        ("GetMatchingWorkflow", lambda d, s: matching_workflow_response(d, s)),
    ],
)
def test_responses_have_exactly_the_model_shape(config, domain_name, operation, build):
    shape = MODEL.operation_model(operation).output_shape
    response = build(config.domain(domain_name), config.settings)
    assert set(response) <= set(shape.members)
    report = ParamValidator().validate(response, shape)
    assert not report.has_errors(), report.generate_report()
    assert check_patterns(response, shape) == []


def test_workflow_response_points_at_the_glue_table_and_output_prefix(config):
    domain = config.domain("customers")
    response = matching_workflow_response(domain, config.settings)
    (source,) = response["inputSourceConfig"]
    assert source == {
        "inputSourceARN": "arn:aws:glue:us-east-1:123456789012:table/entity_resolution/customers_input",
        "schemaName": "customer-schema",
        "applyNormalization": True,
    }
    (output,) = response["outputSourceConfig"]
    assert output["outputS3Path"] == "s3://er-data-lake/entity-resolution/customers/output"
    assert [o["name"] for o in output["output"]] == domain.schema.columns
    assert response["resolutionTechniques"]["ruleBasedProperties"]["rules"][0] == {
        "ruleName": "email_match",
        "matchingKeys": ["email"],
    }
    assert response["roleArn"] == config.settings.role_arn
    assert response["workflowArn"].endswith(":123456789012:matchingworkflow/customer-matching-workflow")
    assert response["createdAt"] == matching_workflow_response(domain, config.settings)["createdAt"]


def test_connected_components_label_each_record_with_its_smallest_member():
    # 0-3-5 chain (edges out of order), 1-2, 4 alone, 6-7-8 through the middle.
    u = np.array([5, 1, 3, 7, 8])
    v = np.array([3, 2, 0, 6, 7])
    assert connected_components(9, u, v).tolist() == [0, 1, 1, 0, 4, 0, 6, 6, 6]
    assert connected_components(3, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == [0, 1, 2]


def test_connected_components_resolve_a_long_chain():
    n = 100_000
    order = np.random.default_rng(1).permutation(n)
    labels = connected_components(n, order[:-1], order[1:])
    assert (labels == 0).all()
