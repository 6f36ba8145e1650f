"""The loaded stage's work: replace the partition's rows of the target table with its latest
match output, behind the check gate and the lineage gate, the load's checks judging the
staged rows before the swap."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from er_assets import interrupts
from er_assets.config import Domain
from er_assets.pipeline import checks, gate
from er_assets.pipeline.baselines import earlier_values
from er_assets.pipeline.handoff import CHECKS_PASSED, asset_key, latest_extract, latest_match
from er_assets.pipeline.meter import Meter
from er_assets.resources.warehouses.base import Warehouse


def load(context, domain: Domain, config: gate.GateConfig, warehouse: Warehouse) -> tuple[dict, list]:
    """Replace the partition's rows of the target table with its latest match output, behind
    the check gate and the lineage gate. The load's checks judge the staged rows before the
    swap: when a blocking one fails, the partition is left untouched."""
    meter = Meter()
    partition = context.partition_key
    override = gate.enforce(context, domain, "matched", config)
    upstream, matched_run = latest_match(context, domain, partition)
    extracted = latest_extract(context, domain, partition)
    override.update(
        gate.enforce_lineage(context, domain, "matched", upstream.extract_run_id, extracted.extract_run_id, config)
    )
    results: list[dg.AssetCheckResult] = []
    churn = earlier_values(context.instance, asset_key(domain, "loaded"), domain, partition, "entity_churn_rate")

    def accept(staged: dict) -> bool:
        interrupts.check()  # the last moment before the commit: a run signalled meanwhile swaps nothing
        results[:] = checks.loaded_results(domain, upstream.output_rows, extracted.rows, staged, upstream.match_ids)
        results.append(checks.no_value_loss(domain, (extracted.profile or {}).get("non_empty"), staged["non_empty"]))
        results.extend(checks.identity_results(domain, staged["identity"], churn))
        return not checks.blocking_failures(results)

    result = warehouse.load_matches(domain, partition, upstream.output_uri, accept, extracted.uri, context.run_id)
    results.append(checks.delivered(domain, partition, result.replaced, dt.datetime.now(dt.timezone.utc)))
    if result.replaced:
        context.log.info(f"loaded {result.rows} rows into {result.table} for partition {partition}")
    else:
        context.log.error(
            f"refused the match output: the load's checks failed on its staged rows; partition "
            f"{partition} of {result.table} left untouched"
        )
    metadata = {
        "rows": result.rows,
        "table": result.table,
        "replaced": result.replaced,
        "job_id": upstream.job_id,
        "matched_run_id": matched_run,
        **(result.identity.metadata() if result.identity else {}),
        **meter.figures(),
        **override,
    }
    metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
    return metadata, results
