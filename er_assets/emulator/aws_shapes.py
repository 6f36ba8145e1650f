"""The domain configuration as AWS Entity Resolution documents.

Create requests (`CreateSchemaMappingInput`, `CreateMatchingWorkflowInput`), which
`autosys-bridge aws export` writes for the AWS CLI, and the GetSchemaMapping /
GetMatchingWorkflow responses the emulator returns through the real client, which
`run_matching` reads like documents exported from an AWS account. A response is its
request plus the service-managed members, so what is deployed and what is emulated can
never differ.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from er_assets import layout
from er_assets.config import Domain, Settings

# The configuration has no creation history; fixed timestamps keep responses reproducible.
CREATED_AT = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
UPDATED_AT = CREATED_AT


def account_id(settings: Settings) -> str:
    """The account of the workflow's IAM role (arn:aws:iam::<account>:role/...)."""
    parts = settings.role_arn.split(":")
    if len(parts) < 6 or not parts[4].isdigit():
        raise ValueError(f"settings.role_arn {settings.role_arn!r} is not an IAM role ARN")
    return parts[4]


def schema_mapping_arn(domain: Domain, settings: Settings) -> str:
    return f"arn:aws:entityresolution:{settings.region}:{account_id(settings)}:schemamapping/{domain.schema.schemaName}"


def matching_workflow_arn(domain: Domain, settings: Settings) -> str:
    return f"arn:aws:entityresolution:{settings.region}:{account_id(settings)}:matchingworkflow/{domain.workflow_name}"


def glue_table_arn(domain: Domain, settings: Settings) -> str:
    return f"arn:aws:glue:{settings.region}:{account_id(settings)}:table/{settings.glue_database}/{domain.glue_table}"


def schema_mapping_request(domain: Domain, settings: Settings) -> dict[str, Any]:
    """The CreateSchemaMapping input for the domain (`--cli-input-json`)."""
    return {
        "schemaName": domain.schema.schemaName,
        "description": f"{domain.project_name} schema",
        "mappedInputFields": [f.model_dump(exclude_none=True) for f in domain.schema.mappedInputFields],
    }


def _response(request: dict[str, Any], arn_member: str, arn: str, **more: Any) -> dict[str, Any]:
    """A Get* response: the create request plus the members the service manages."""
    return {**request, arn_member: arn, "createdAt": CREATED_AT, "updatedAt": UPDATED_AT, "tags": {}, **more}


def schema_mapping_response(domain: Domain, settings: Settings) -> dict[str, Any]:
    return _response(
        schema_mapping_request(domain, settings), "schemaArn", schema_mapping_arn(domain, settings), hasWorkflows=True
    )


def matching_workflow_request(domain: Domain, settings: Settings) -> dict[str, Any]:
    """The CreateMatchingWorkflow input for the domain (`--cli-input-json`). No
    incrementalRunConfig: jobs start only when the pipeline starts them."""
    output = {
        "outputS3Path": layout.output_prefix(domain),
        "output": [{"name": name} for name in domain.schema.columns],
        # Matching normalises the input; the output keeps the values as extracted, so the
        # target table gets names in every script exactly as the source had them.
        "applyNormalization": False,
    }
    if settings.kms_key_arn:
        output["KMSArn"] = settings.kms_key_arn
    return {
        "workflowName": domain.workflow_name,
        "description": f"{domain.project_name} matching workflow",
        "inputSourceConfig": [
            {
                "inputSourceARN": glue_table_arn(domain, settings),
                "schemaName": domain.schema.schemaName,
                "applyNormalization": True,
            }
        ],
        "outputSourceConfig": [output],
        "resolutionTechniques": domain.resolution.model_dump(exclude_none=True),
        "roleArn": settings.role_arn,
    }


def matching_workflow_response(domain: Domain, settings: Settings) -> dict[str, Any]:
    return _response(
        matching_workflow_request(domain, settings), "workflowArn", matching_workflow_arn(domain, settings)
    )
