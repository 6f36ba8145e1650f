"""GetSchemaMapping / GetMatchingWorkflow responses built from the domain configuration.

The dicts have exactly the members botocore's `entityresolution` model gives those
operations' outputs (`GetSchemaMappingOutput`, `GetMatchingWorkflowOutput`), so the emulator
can return them through the real client and `run_matching` can read them like documents
exported from an AWS account.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

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


def schema_mapping_response(domain: Domain, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    return {
        "schemaName": domain.schema.schemaName,
        "schemaArn": schema_mapping_arn(domain, settings),
        "description": f"{domain.project_name} schema",
        "mappedInputFields": [f.model_dump(exclude_none=True) for f in domain.schema.mappedInputFields],
        "createdAt": CREATED_AT,
        "updatedAt": UPDATED_AT,
        "tags": {},
        "hasWorkflows": True,
    }


def matching_workflow_response(domain: Domain, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    return {
        "workflowName": domain.workflow_name,
        "workflowArn": matching_workflow_arn(domain, settings),
        "description": f"{domain.project_name} matching workflow",
        "inputSourceConfig": [
            {
                "inputSourceARN": glue_table_arn(domain, settings),
                "schemaName": domain.schema.schemaName,
                "applyNormalization": True,
            }
        ],
        "outputSourceConfig": [
            {
                "outputS3Path": domain.output_prefix,
                "output": [{"name": name} for name in domain.schema.columns],
                # Matching normalises the input; the output keeps the values as extracted, so
                # the target table gets names in every script exactly as the source had them.
                "applyNormalization": False,
            }
        ],
        "resolutionTechniques": domain.resolution.model_dump(exclude_none=True),
        "createdAt": CREATED_AT,
        "updatedAt": UPDATED_AT,
        "roleArn": settings.role_arn,
        "tags": {},
    }
