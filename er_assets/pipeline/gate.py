"""The data-quality gate across runs: a stage refuses to run on an upstream partition whose
latest blocking check result failed.

Within one run Dagster's blocking checks already stop downstream steps: a failed blocking
ERROR check fails its step (DagsterAssetCheckFailedError, raised in dagster's
_core/execution/plan/execute_step.py), so the steps after it are skipped. A later run of the
downstream stage on its own has no such step before it, and Dagster does not stop it; so each
stage asks the instance for the latest evaluation of every check of its upstream asset for
the same partition before doing any work. The lineage gate refuses an upstream made from
an older extract than the partition's latest. An operator who has reviewed the data may pass
`override_gate` with a reason; the override is logged and recorded in the materialisation.

Dagster 1.13 has no public query for a check's latest result on one partition; the private
one is in er_assets/dagster_private.py with the others, whose docstring says why.
"""

from __future__ import annotations

import dagster as dg

from er_assets.config import Domain
from er_assets.dagster_private import latest_check_evaluation
from er_assets.errors import GateClosed, UpstreamRefused
from er_assets.pipeline.checks import check_names


class GateConfig(dg.Config):
    """Run configuration of a stage behind a gate: the operator's override, and who and why."""

    override_gate: bool = False
    override_reason: str = ""
    override_by: str = ""


def failing_checks(instance: dg.DagsterInstance, domain: Domain, stage: str, partition: str) -> dict[str, str]:
    """check name -> description, for the checks of `stage` whose latest evaluation for
    `partition` failed with ERROR severity. Checks planned but never evaluated (a step that
    stopped early) do not count: the latest evaluated result stands."""
    failing = {}
    for name in check_names(domain, stage):
        key = dg.AssetCheckKey(dg.AssetKey([domain.name, stage]), name)
        evaluation = latest_check_evaluation(instance, key, partition)
        if evaluation is not None and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failing[name] = evaluation.description or "failed"
    return failing


def enforce(context, domain: Domain, upstream: str, config: GateConfig) -> dict:
    """Raise GateClosed while `upstream` fails a blocking check for this partition, unless
    overridden with a reason. Returns the metadata recording an override ({} when none)."""
    partition = context.partition_key
    failing = failing_checks(context.instance, domain, upstream, partition)
    if not failing:
        return {}
    listed = "; ".join(f"{name}: {text}" for name, text in failing.items())
    where = f"{domain.name}/{upstream} partition {partition}"
    refusal = GateClosed(
        f"gate closed: {where} failed data-quality checks ({listed}). Fix the data and re-run "
        f"{upstream}, or, having reviewed it, re-run with override_gate and a reason "
        "(autosys-bridge run ... --override-gate --reason TEXT)"
    )
    return {
        "gate_override": _override(
            context,
            config,
            refusal,
            where,
            f"failed: {listed}",
            {"upstream": f"{domain.name}/{upstream}", "failed_checks": failing},
        )
    }


def enforce_lineage(context, domain: Domain, upstream: str, made_from: str, latest: str, config: GateConfig) -> dict:
    """Refuse (UpstreamRefused) an `upstream` materialisation made from extract `made_from`
    when the partition's latest extract is `latest`: loading it would put an older slice of
    the source into the target. Overridable like the check gate; returns the override record."""
    if made_from == latest:
        return {}
    where = f"{domain.name}/{upstream} partition {context.partition_key}"
    problem = f"was made from extract run {made_from}, but the latest extract is run {latest}"
    refusal = UpstreamRefused(
        f"stale upstream: {where} {problem}. Re-run {upstream} on the latest extract, or, having reviewed it, "
        "re-run with override_gate and a reason (autosys-bridge run ... --override-gate --reason TEXT)"
    )
    return {
        "lineage_override": _override(
            context,
            config,
            refusal,
            where,
            problem,
            {"upstream": f"{domain.name}/{upstream}", "made_from": made_from, "latest_extract": latest},
        )
    }


def _override(context, config: GateConfig, refusal: Exception, where: str, problem: str, record: dict) -> dict:
    """Raise `refusal` unless the operator overrides the gate with a reason; log and return the
    override's record (who, why, and what was overridden)."""
    if not config.override_gate:
        raise refusal
    if not config.override_reason.strip():
        raise type(refusal)(f"gate closed: {where} {problem}; override_gate needs override_reason")
    who = config.override_by.strip() or "unnamed operator"
    context.log.warning(
        f"GATE OVERRIDDEN by {who}: {config.override_reason.strip()!r}; proceeding although {where} {problem}"
    )
    return {"by": who, "reason": config.override_reason.strip(), **record}
