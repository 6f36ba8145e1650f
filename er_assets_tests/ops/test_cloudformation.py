"""The operations part of the exported template: per domain an SNS topic for the failure list
and the CloudWatch alarms on the pipeline's metrics, the workers' PutMetricData policy; and the
template still passes cfn-lint. (The Entity Resolution part: bridge/test_aws_cli.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from er_assets.config import load_config
from er_assets.ops.cloudformation import TEMPLATE_NAME, export, failure_list, template
from er_assets.resources import metrics
from er_assets_tests.helpers import write_config

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", str(path)], capture_output=True, text=True, timeout=120
    )


def of_type(body: dict, kind: str) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in body["Resources"].items() if r["Type"] == kind}


def alarms_by_domain(body: dict) -> dict[str, dict[str, dict]]:
    """domain -> alarm kind (the name after the domain) -> its properties."""
    found: dict[str, dict[str, dict]] = {}
    for props in of_type(body, "AWS::CloudWatch::Alarm").values():
        domain = props["Dimensions"][0]["Value"]
        kind = props["AlarmName"]["Fn::Sub"].removeprefix(f"${{AWS::StackName}}-{domain}-")
        found.setdefault(domain, {})[kind] = props
    return found


@pytest.fixture(autouse=True)
def default_namespace(monkeypatch):
    monkeypatch.delenv(metrics.NAMESPACE_ENV, raising=False)


def test_each_domain_pages_its_failure_list_through_its_own_topic(config):
    body = template(config, list(config.domains.values()))
    topics = of_type(body, "AWS::SNS::Topic")
    assert sorted(topics) == ["CustomersAlarmTopic", "ProductsAlarmTopic", "VendorsAlarmTopic"]
    assert topics["CustomersAlarmTopic"]["Subscription"] == [
        {"Protocol": "email", "Endpoint": "customer-team@example.com"},
        {"Protocol": "email", "Endpoint": "er-admin@example.com"},
    ]
    alarms = alarms_by_domain(body)
    assert {d: sorted(kinds) for d, kinds in alarms.items()} == {
        "customers": ["late", "no-delivery", "slow-matching", "stage-failed"],  # daily: also the heartbeat
        "products": ["late", "slow-matching", "stage-failed"],
        "vendors": ["late", "slow-matching", "stage-failed"],
    }
    for domain, kinds in alarms.items():
        for props in kinds.values():
            assert props["AlarmActions"] == [{"Ref": f"{domain.capitalize()}AlarmTopic"}]
            assert props["Namespace"] == {"Ref": "MetricsNamespace"}
    assert body["Parameters"]["MetricsNamespace"]["Default"] == metrics.DEFAULT_NAMESPACE
    assert body["Outputs"]["VendorsAlarmTopicArn"] == {"Value": {"Ref": "VendorsAlarmTopic"}}


def test_the_alarms_watch_the_metrics_the_stages_publish(config):
    customers = alarms_by_domain(template(config, [config.domain("customers")]))["customers"]

    def watched(kind):
        props = customers[kind]
        dims = tuple((d["Name"], d["Value"]) for d in props["Dimensions"])
        rule = {k: props.get(k) for k in ("Statistic", "Period", "EvaluationPeriods", "Threshold")}
        return props["MetricName"], dims, rule, props["ComparisonOperator"], props["TreatMissingData"]

    domain = ("Domain", "customers")
    assert watched("stage-failed") == (
        metrics.FAILED,
        (domain,),  # the Domain-only datum: any stage
        {"Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1},
        "GreaterThanOrEqualToThreshold",
        "notBreaching",
    )
    assert watched("late") == (
        metrics.SLA_MET,
        (domain, ("Stage", "loaded")),
        {"Statistic": "Minimum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1},
        "LessThanThreshold",
        "notBreaching",
    )
    assert watched("slow-matching") == (
        metrics.DURATION,
        (domain, ("Stage", "matched")),
        {"Statistic": "Maximum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 10800 // 2},
        "GreaterThanThreshold",
        "notBreaching",
    )
    # A day, the SLA (60 minutes), an hour of DST and one of bins: 27 empty hours in a row.
    assert watched("no-delivery") == (
        metrics.SUCCEEDED,
        (domain, ("Stage", "loaded")),
        {"Statistic": "Sum", "Period": 3600, "EvaluationPeriods": 27, "Threshold": 1},
        "LessThanThreshold",
        "breaching",
    )
    assert customers["no-delivery"]["DatapointsToAlarm"] == 27


def test_a_datum_of_each_watched_kind_is_what_a_stage_end_sends(tmp_path, config):
    """The alarms' (metric, dimensions) pairs are among those a stage end really publishes."""
    from er_assets.history import HistoryStore, Status

    with HistoryStore.from_url(f"sqlite:///{tmp_path / 'h.db'}") as store:
        sent = set()
        for stage, status in (("extract", Status.FAILED), ("matched", Status.SUCCEEDED), ("loaded", Status.SUCCEEDED)):
            store.record_start("r", stage, "customers", "2026-10-01", "2026-10-01", "cli")
            store.record_end("r", stage, status, 10)
            rows = store.partition_rows("customers", ["2026-10-01"])
            for datum in metrics.stage_datums(store.get("r", stage), 60, rows):
                sent.add((datum["MetricName"], tuple((d["Name"], d["Value"]) for d in datum["Dimensions"])))
    for props in alarms_by_domain(template(config, [config.domain("customers")]))["customers"].values():
        assert (props["MetricName"], tuple((d["Name"], d["Value"]) for d in props["Dimensions"])) in sent


def test_the_failure_list_is_the_failure_mail_s(tmp_path):
    from er_assets.history import Status
    from er_assets.resources.notifications import recipients

    path = write_config(
        tmp_path,
        lambda raw: (
            raw["settings"].update(admin_emails=["Vendor-Team@example.com", "ops@example.com"]),
            raw["domains"]["vendors"]["notifications"].update(on_failure=["oncall@example.com"]),
        ),
    )
    config = load_config(path)
    vendors = config.domain("vendors")
    expected = ["vendor-team@example.com", "oncall@example.com", "ops@example.com"]  # once, whatever the case
    assert failure_list(vendors, config) == expected == recipients(config, "vendors", "loaded", Status.FAILED)


def test_the_workers_may_publish_in_the_namespace_only(monkeypatch, config):
    monkeypatch.setenv(metrics.NAMESPACE_ENV, "Team/ER")
    body = template(config, [config.domain("vendors")])
    assert body["Parameters"]["MetricsNamespace"]["Default"] == "Team/ER"
    policy = body["Resources"]["PipelineMetricsPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Sid": "PublishStageMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",  # PutMetricData has no resource-level permissions
            "Condition": {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}},
        }
    ]
    # Attached to the pipeline's role when the stack is told its name.
    assert policy["Properties"]["Roles"] == {
        "Fn::If": ["AttachMetricsPolicy", [{"Ref": "PipelineRoleName"}], {"Ref": "AWS::NoValue"}]
    }
    assert body["Conditions"]["AttachMetricsPolicy"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PipelineRoleName"}, ""]}]}
    # The workflow role, the service's, gets nothing of it.
    assert "cloudwatch" not in json.dumps(body["Resources"]["WorkflowRole"])


def test_a_domain_nobody_hears_and_a_long_sla_still_lint_clean(tmp_path):
    """A topic without subscriptions, and a daily SLA whose heartbeat window would pass
    CloudWatch's 7-day evaluation range (so there is none), pass cfn-lint."""

    def mutate(raw):
        raw["settings"]["admin_emails"] = []
        raw["domains"]["customers"]["notifications"] = {}
        raw["domains"]["customers"]["schedule"]["sla_minutes"] = 7 * 24 * 60

    config = load_config(write_config(tmp_path, mutate))
    export(config, [config.domain("customers")], tmp_path / "out")
    body = json.loads((tmp_path / "out" / TEMPLATE_NAME).read_text())
    assert "Subscription" not in body["Resources"]["CustomersAlarmTopic"]["Properties"]
    assert "no-delivery" not in alarms_by_domain(body)["customers"]
    result = lint(tmp_path / "out" / TEMPLATE_NAME)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_namespace_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(metrics.NAMESPACE_ENV, "AWS/EntityResolution")
    done = subprocess.run(
        [sys.executable, "-m", "autosys_bridge.cli", "aws", "export", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "ER_METRICS_NAMESPACE='AWS/EntityResolution'" in done.stderr
    assert not (tmp_path / "out").exists()
