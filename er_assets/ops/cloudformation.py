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

Operations (the metrics of `er_assets/resources/metrics.py`): per domain an SNS topic with an
e-mail subscription per address of the failure list (`notifications.emails` + `on_failure` +
`settings.admin_emails`, as the failure mail) and the CloudWatch alarms of `_alarms`, each
notifying that topic; and a managed policy allowing `cloudwatch:PutMetricData` in the metrics
namespace only, attached to the pipeline's role when the stack's PipelineRoleName parameter
names it (the template has no role of the pipeline's own: the workflow role is the service's).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from er_assets import layout, stages
from er_assets.config import Configuration, Domain
from er_assets.emulator.aws_shapes import matching_workflow_request, schema_mapping_request
from er_assets.resources import metrics

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


# CloudWatch's limit on an alarm's evaluation range (Period x EvaluationPeriods) for periods of an
# hour or more: seven days (PutMetricAlarm, Period; one day below an hour's period).
MAX_EVALUATION_SECONDS = 7 * 24 * 3600
HOUR = 3600
# Alarms on a stage end's own datapoint: one 5-minute period holds it, a missing one is news of nothing.
EVENT_PERIOD = 300
# The matched stage is "far beyond its usual duration" past this share of EXECUTION_TIMEOUT.
SLOW_MATCHING_SHARE = 0.5

PARAMETERS = {
    "MetricsNamespace": {
        "Type": "String",
        "Description": f"CloudWatch namespace the pipeline publishes into ({metrics.NAMESPACE_ENV} on its hosts)",
        "MinLength": 1,
        "MaxLength": 255,
        "AllowedPattern": "^[^:].*$",
    },
    "PipelineRoleName": {
        "Type": "String",
        "Default": "",
        "Description": "Name of the IAM role the Dagster workers and AutoSys agents run as; when given, "
        "the PutMetricData policy is attached to it (else attach the PipelineMetricsPolicy output yourself)",
        "MaxLength": 64,
        "AllowedPattern": "^[A-Za-z0-9+=,.@_-]*$",
    },
}


def _pipeline_metrics_policy() -> dict:
    """cloudwatch:PutMetricData for the pipeline's role, in its namespace only. PutMetricData
    has no resource-level permissions (Resource must be "*"); the `cloudwatch:namespace`
    condition key scopes it (CloudWatch User Guide, "Using condition keys to limit access to
    CloudWatch namespaces")."""
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": "Lets the entity-resolution pipeline publish its stage metrics "
            "(written by autosys-bridge aws export)",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublishStageMetrics",
                        "Effect": "Allow",
                        "Action": "cloudwatch:PutMetricData",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}},
                    }
                ],
            },
            "Roles": {"Fn::If": ["AttachMetricsPolicy", [{"Ref": "PipelineRoleName"}], {"Ref": "AWS::NoValue"}]},
        },
    }


def failure_list(domain: Domain, config: Configuration) -> list[str]:
    """Who hears of a failure: the addresses the failure mail goes to
    (`er_assets.resources.notifications.recipients`), once each whatever their case. Computed
    here so that exporting a template needs neither the mail nor the job-history modules."""
    seen: set[str] = set()
    addresses = []
    for address in [*domain.notifications.emails, *domain.notifications.on_failure, *config.settings.admin_emails]:
        if address.lower() not in seen:
            seen.add(address.lower())
            addresses.append(address)
    return addresses


def _topic(domain: Domain, config: Configuration) -> dict:
    """The domain's alarm topic: one e-mail subscription per address of its failure list (each
    address must confirm the subscription SNS mails it before it receives anything)."""
    addresses = failure_list(domain, config)
    properties: dict[str, Any] = {"DisplayName": f"ER {domain.name} alarms"[:100]}
    if addresses:
        properties["Subscription"] = [{"Protocol": "email", "Endpoint": address} for address in addresses]
    return {"Type": "AWS::SNS::Topic", "Properties": properties}


def _alarm(domain: Domain, name: str, description: str, metric: str, stage: str | None, **rule: Any) -> dict:
    dimensions = [{"Name": metrics.DOMAIN, "Value": domain.name}]
    if stage:
        dimensions.append({"Name": metrics.STAGE, "Value": stage})
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": f"${{AWS::StackName}}-{domain.name}-{name}"},
            "AlarmDescription": f"{domain.name}: {description}",
            "Namespace": {"Ref": "MetricsNamespace"},
            "MetricName": metric,
            "Dimensions": dimensions,
            "AlarmActions": [{"Ref": _logical_id(domain, "AlarmTopic")}],
            **rule,
        },
    }


def _alarms(domain: Domain, config: Configuration) -> dict[str, dict]:
    """The domain's alarms, by logical id (property names as AWS::CloudWatch::Alarm documents
    them: Namespace, MetricName, Dimensions, Statistic, Period, EvaluationPeriods,
    DatapointsToAlarm, Threshold, ComparisonOperator, TreatMissingData, AlarmActions).

    - StageFailed: any failed stage (FAILED, DQ_FAILED, TIMEOUT) within 5 minutes, summed over
      the stages by the Domain-only datum. Missing data is not breaching: no stage ended.
    - Late: the partition was delivered after `sla_minutes` (SlaMet 0). Missing data is not
      breaching: SlaMet exists only at deliveries, so a gap means "nothing delivered", which
      for weekly and monthly domains is the normal state between partitions.
    - NoDelivery (daily domains only): no successful load for 26 hours + the SLA (a day, the
      SLA, an hour of daylight-saving shift and one for the hourly bins), missing data
      breaching: for a daily schedule an empty hour *is* an hour without a delivery, so this
      is the reading that also catches a partition that never started or never ended, without
      the Dagster daemon whose `er_late_partitions` sensor says so first. A weekly or monthly
      window would exceed CloudWatch's 7-day evaluation range, and there the sensor (and
      AutoSys's MUST_COMPLETE alarm) is the one voice for an absence.
    - SlowMatching: a matched stage that took more than half of EXECUTION_TIMEOUT. A static
      threshold rather than an ANOMALY_DETECTION_BAND: a matched stage ends once a day, week
      or month, and CloudWatch trains its model on two weeks of the metric (2 datapoints for a
      weekly domain, none to speak of for a monthly one), so the band would be noise; and a
      job past the whole timeout is already a failed stage (TIMEOUT). Half the timeout is the
      point from which one more doubling of the volume fails the stage.
    """
    settings, sla = config.settings, domain.schedule.sla_minutes
    alarms = {
        _logical_id(domain, "StageFailedAlarm"): _alarm(
            domain,
            "stage-failed",
            "a stage failed, timed out or was stopped by a blocking data-quality check. "
            "The failure mail names run and error; see `autosys-bridge report` and the run in the Dagster UI.",
            metrics.FAILED,
            None,
            Statistic="Sum",
            Period=EVENT_PERIOD,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
        ),
        _logical_id(domain, "LateAlarm"): _alarm(
            domain,
            "late",
            f"a partition was delivered after its SLA of {sla} minutes from its first stage start. "
            "See er_v_sla_compliance and the report's SLA panel.",
            metrics.SLA_MET,
            stages.FINAL,
            Statistic="Minimum",
            Period=EVENT_PERIOD,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="notBreaching",
        ),
        _logical_id(domain, "SlowMatchingAlarm"): _alarm(
            domain,
            "slow-matching",
            f"a matching job took more than {SLOW_MATCHING_SHARE:.0%} of EXECUTION_TIMEOUT "
            f"({settings.execution_timeout} s): at twice that the job is abandoned and the stage fails. "
            "See the matched stage's duration in er_v_stage_duration and its job in the Entity Resolution console.",
            metrics.DURATION,
            "matched",
            Statistic="Maximum",
            Period=EVENT_PERIOD,
            EvaluationPeriods=1,
            Threshold=int(settings.execution_timeout * SLOW_MATCHING_SHARE),
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
    }
    hours = 26 + math.ceil(sla / 60)
    if domain.schedule.cadence == "daily" and hours * HOUR <= MAX_EVALUATION_SECONDS:
        alarms[_logical_id(domain, "NoDeliveryAlarm")] = _alarm(
            domain,
            "no-delivery",
            f"no partition was delivered for {hours} hours (a day, the SLA and slack): a run failed, "
            "hangs or never started. The er_late_partitions mail says where the partition stands.",
            metrics.SUCCEEDED,
            stages.FINAL,
            Statistic="Sum",
            Period=HOUR,
            EvaluationPeriods=hours,
            DatapointsToAlarm=hours,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
            TreatMissingData="breaching",
        )
    return alarms


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
    resources["PipelineMetricsPolicy"] = _pipeline_metrics_policy()
    outputs = {
        "WorkflowRoleArn": {"Value": {"Fn::GetAtt": ["WorkflowRole", "Arn"]}},
        "PipelineMetricsPolicyArn": {"Value": {"Ref": "PipelineMetricsPolicy"}},
    }
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
        resources[_logical_id(domain, "AlarmTopic")] = _topic(domain, config)
        resources.update(_alarms(domain, config))
        outputs[_logical_id(domain, "AlarmTopicArn")] = {"Value": {"Ref": _logical_id(domain, "AlarmTopic")}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Entity Resolution resources of {', '.join(d.name for d in domains)} "
        f"(from {config.path.name}; written by autosys-bridge aws export)",
        # The namespace's default is the exporting shell's ER_METRICS_NAMESPACE (or the default).
        "Parameters": {
            **PARAMETERS,
            "MetricsNamespace": {**PARAMETERS["MetricsNamespace"], "Default": metrics.namespace()},
        },
        "Conditions": {"AttachMetricsPolicy": {"Fn::Not": [{"Fn::Equals": [{"Ref": "PipelineRoleName"}, ""]}]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def export(config: Configuration, domains: list[Domain], out_dir: Path) -> list[Path]:
    """Write the request documents and the template under `out_dir`; return the files."""
    body = template(config, domains)  # first: a bad ER_METRICS_NAMESPACE raises before anything is written
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
    write(out_dir / TEMPLATE_NAME, body)
    return written
