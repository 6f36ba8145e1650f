"""The configuration as AWS resources: CLI request documents and one CloudFormation template.

`export` writes, per domain, the CreateSchemaMapping and CreateMatchingWorkflow inputs
(for `aws entityresolution create-... --cli-input-json file://...`) and one template with
what the pipeline needs in the account: the Glue database, one Glue table per domain (the
workflow's input, which the `matched` stage re-points at each partition), the schema
mappings, the matching workflows and the workflows' IAM role.

The template's resource properties are the request documents in CloudFormation's
PascalCase (`AWS::EntityResolution::MatchingWorkflow` mirrors CreateMatchingWorkflow),
except where CloudFormation differs: an input source names its schema by `SchemaArn`, and
ARNs are built from the stack's own partition, region and account.

The role is least privilege, as AWS's "Creating a workflow job role" describes it: trusted by
entityresolution.amazonaws.com for this account only; s3:GetObject on the extract prefixes,
s3:PutObject on the output prefixes, s3:ListBucket limited to both; Glue reads of the catalog,
database and input tables; and kms:Decrypt / kms:GenerateDataKey on `settings.kms_key_arn`
when the bucket uses a customer-managed key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from er_assets import layout
from er_assets.config import Configuration, Domain
from er_assets.emulator.aws_shapes import matching_workflow_request, schema_mapping_request

TEMPLATE_NAME = "entity-resolution.template.json"
PARQUET = "org.apache.hadoop.hive.ql.io.parquet"


def _pascal(value: Any) -> Any:
    """API member names (camelCase) as CloudFormation property names (PascalCase)."""
    if isinstance(value, dict):
        return {key[0].upper() + key[1:]: _pascal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value


def _logical_id(domain: Domain, kind: str) -> str:
    return "".join(part.capitalize() for part in domain.name.split("_")) + kind


def _arn(service: str, resource: str, regional: bool = True) -> dict:
    where = "${AWS::Region}:${AWS::AccountId}" if regional else ":"
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:{where}:{resource}"}


def _role_name(role_arn: str) -> tuple[str, str]:
    """(path, name) of arn:aws:iam::<account>:role/<path...>/<name>."""
    _, _, resource = role_arn.rpartition(":role/")
    *path, name = resource.split("/")
    return ("/" + "/".join(path) + "/" if path else "/"), name


def _glue_table(domain: Domain, database: str) -> dict:
    return {
        "Type": "AWS::Glue::Table",
        "DependsOn": "GlueDatabase",
        "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseName": database,
            "TableInput": {
                "Name": domain.glue_table,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet"},
                "StorageDescriptor": {
                    "Columns": [{"Name": column, "Type": "string"} for column in domain.schema.columns],
                    "Location": layout.extract_prefix(domain) + "/",
                    "InputFormat": f"{PARQUET}.MapredParquetInputFormat",
                    "OutputFormat": f"{PARQUET}.MapredParquetOutputFormat",
                    "SerdeInfo": {"SerializationLibrary": f"{PARQUET}.serde.ParquetHiveSerDe"},
                },
            },
        },
    }


def _workflow(domain: Domain, config: Configuration) -> dict:
    request = matching_workflow_request(domain, config.settings)
    properties = _pascal({k: v for k, v in request.items() if k not in ("inputSourceConfig", "roleArn")})
    properties["InputSourceConfig"] = [
        {
            "InputSourceARN": _arn("glue", f"table/{config.settings.glue_database}/{domain.glue_table}"),
            "SchemaArn": {"Fn::GetAtt": [_logical_id(domain, "SchemaMapping"), "SchemaArn"]},
            "ApplyNormalization": request["inputSourceConfig"][0]["applyNormalization"],
        }
    ]
    properties["RoleArn"] = {"Fn::GetAtt": ["WorkflowRole", "Arn"]}
    return {
        "Type": "AWS::EntityResolution::MatchingWorkflow",
        "DependsOn": _logical_id(domain, "GlueTable"),
        "Properties": properties,
    }


def _role(config: Configuration, domains: list[Domain]) -> dict:
    settings = config.settings
    path, name = _role_name(settings.role_arn)
    buckets: dict[str, list[str]] = {}
    for domain in domains:
        buckets.setdefault(domain.bucket, []).extend(
            [f"{layout.extract_key(domain)}/*", f"{layout.output_key(domain)}/*"]
        )

    def objects(key) -> list[dict]:
        return [_arn("s3", f"{d.bucket}/{key(d)}/*", regional=False) for d in domains]

    statements = [
        {"Sid": "ReadExtracts", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects(layout.extract_key)},
        {"Sid": "WriteOutput", "Effect": "Allow", "Action": "s3:PutObject", "Resource": objects(layout.output_key)},
        *(
            {
                "Sid": f"ListPrefixes{i}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": _arn("s3", bucket, regional=False),
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            }
            for i, (bucket, prefixes) in enumerate(buckets.items())
        ),
        {
            "Sid": "ReadInputTables",
            "Effect": "Allow",
            "Action": [
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetPartition",
                "glue:GetPartitions",
                "glue:BatchGetPartition",
            ],
            "Resource": [
                _arn("glue", "catalog"),
                _arn("glue", f"database/{settings.glue_database}"),
                *(_arn("glue", f"table/{settings.glue_database}/{d.glue_table}") for d in domains),
            ],
        },
    ]
    if settings.kms_key_arn:
        statements.append(
            {
                "Sid": "UseBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": settings.kms_key_arn,
            }
        )
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "Path": path,
            "Description": "Role of the entity-resolution matching workflows (written by autosys-bridge aws export)",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "entityresolution.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        # Only this account's workflows may use the role (confused-deputy protection).
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "entity-resolution-workflow",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def template(config: Configuration, domains: list[Domain]) -> dict:
    """One CloudFormation template for the domains' Entity Resolution resources."""
    database = config.settings.glue_database
    resources: dict[str, dict] = {
        "GlueDatabase": {
            "Type": "AWS::Glue::Database",
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseInput": {"Name": database, "Description": "Input tables of the entity-resolution workflows"},
            },
        },
        "WorkflowRole": _role(config, domains),
    }
    outputs = {"WorkflowRoleArn": {"Value": {"Fn::GetAtt": ["WorkflowRole", "Arn"]}}}
    for domain in domains:
        resources[_logical_id(domain, "GlueTable")] = _glue_table(domain, database)
        resources[_logical_id(domain, "SchemaMapping")] = {
            "Type": "AWS::EntityResolution::SchemaMapping",
            "Properties": _pascal(schema_mapping_request(domain, config.settings)),
        }
        resources[_logical_id(domain, "MatchingWorkflow")] = _workflow(domain, config)
        outputs[_logical_id(domain, "WorkflowArn")] = {
            "Value": {"Fn::GetAtt": [_logical_id(domain, "MatchingWorkflow"), "WorkflowArn"]}
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Entity Resolution resources of {', '.join(d.name for d in domains)} "
        f"(from {config.path.name}; written by autosys-bridge aws export)",
        "Resources": resources,
        "Outputs": outputs,
    }


def export(config: Configuration, domains: list[Domain], out_dir: Path) -> list[Path]:
    """Write the request documents and the template under `out_dir`; return the files."""
    written = []

    def write(path: Path, document: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)

    for domain in domains:
        write(out_dir / domain.name / "create-schema-mapping.json", schema_mapping_request(domain, config.settings))
        write(
            out_dir / domain.name / "create-matching-workflow.json", matching_workflow_request(domain, config.settings)
        )
    write(out_dir / TEMPLATE_NAME, template(config, domains))
    return written
