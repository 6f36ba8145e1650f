"""The asset factory: per domain, source -> extract -> matched -> loaded, partitioned.

Wiring only: each asset hands its stage's work (`pipeline/extracting.py`, `matching.py`,
`loading.py`) the domain and the resources it uses, and records it in the job history. Stages
pass state through the Dagster instance, not files in /tmp (`pipeline/handoff.py`).
Behaviour differs between deployments only through the resources.
"""

import dagster as dg

from er_assets.config import Domain, Settings
from er_assets.defs.location import complete_run_tags
from er_assets.partitions import partitions_def
from er_assets.pipeline import checks, extracting, gate, loading, matching
from er_assets.pipeline.handoff import asset_key
from er_assets.pipeline.matching import MatchingConfig
from er_assets.pipeline.recording import blocked_failure, recording
from er_assets.resources.entity_resolution import EntityResolutionResource
from er_assets.resources.history import HistoryResource
from er_assets.resources.object_store import ObjectStore
from er_assets.resources.warehouses.base import Warehouse


def domain_assets(domain: Domain, settings: Settings) -> list:
    """The domain's source table and its three stages, partitioned by the domain's cadence."""
    parts = partitions_def(domain)
    return [
        _source(domain),
        _extract_asset(domain, settings, parts),
        _matched_asset(domain, settings, parts),
        _loaded_asset(domain, settings, parts),
    ]


def _source(domain: Domain) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=[domain.name, "source"],
        group_name=domain.name,
        description=f"Source table {domain.source.table}, observed, not materialised here.",
        metadata={"table": domain.source.table, "partition_column": domain.source.partition_column},
        kinds={"table"},
    )


def _stage(domain: Domain, parts: dg.PartitionsDefinition, stage: str, upstream: str, **properties):
    """The decorator of one stage's asset: in the domain's group, partitioned, after `upstream`,
    with the stage's checks."""
    return dg.asset(
        key=[domain.name, stage],
        deps=[asset_key(domain, upstream)],
        partitions_def=parts,
        group_name=domain.name,
        check_specs=checks.specs(domain, stage, parts),
        **properties,
    )


def _extract_asset(domain: Domain, settings: Settings, parts: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @_stage(
        domain,
        parts,
        "extract",
        "source",
        kinds={"parquet"},
        description=f"The partition's slice of {domain.source.table}, unloaded as parquet to the object store.",
    )
    def extract(
        context: dg.AssetExecutionContext, warehouse: Warehouse, object_store: ObjectStore, history: HistoryResource
    ):
        yield from _recorded(
            context,
            history,
            domain,
            settings,
            "extract",
            "rows",
            lambda: extracting.extract(context, domain, warehouse, object_store),
        )

    return extract


def _matched_asset(domain: Domain, settings: Settings, parts: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @_stage(
        domain,
        parts,
        "matched",
        "extract",
        pool=settings.concurrency_pool,
        kinds={"aws"},
        description=f"AWS Entity Resolution workflow {domain.workflow_name} run on the partition's extract.",
    )
    def matched(
        context: dg.AssetExecutionContext,
        config: MatchingConfig,
        entity_resolution: EntityResolutionResource,
        warehouse: Warehouse,
        object_store: ObjectStore,
        history: HistoryResource,
    ):
        yield from _recorded(
            context,
            history,
            domain,
            settings,
            "matched",
            "output_rows",
            lambda: matching.match(context, domain, settings, config, entity_resolution, warehouse, object_store),
        )

    return matched


def _loaded_asset(domain: Domain, settings: Settings, parts: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @_stage(
        domain,
        parts,
        "loaded",
        "matched",
        kinds={"table"},
        description=f"Match output loaded into {domain.target.table}, replacing the partition's rows.",
    )
    def loaded(
        context: dg.AssetExecutionContext, config: gate.GateConfig, warehouse: Warehouse, history: HistoryResource
    ):
        yield from _recorded(
            context,
            history,
            domain,
            settings,
            "loaded",
            "rows",
            lambda: loading.load(context, domain, config, warehouse),
        )

    return loaded


def _recorded(context, history: HistoryResource, domain: Domain, settings: Settings, stage: str, rows: str, work):
    """Do a stage's `work` (-> metadata, check results) inside its job-history row, which counts
    `metadata[rows]` records (and, in production, whose end is published to CloudWatch in
    `settings.region`). First the run gets the tags a bridge run has, whoever started it.

    A result that fails a blocking check is not materialised: its check results are reported,
    the result is kept as an observation (`handoff.latest_result` reads it), and the step
    fails with the DQ exit code, so Dagster shows the partition as failed, not materialised."""
    complete_run_tags(context, domain.name)
    with recording(context, history, domain.name, stage, settings.region) as record:
        metadata, results = work()
        record.finish(metadata[rows], metadata, results)
    if not record.failed_checks:
        yield dg.MaterializeResult(metadata=metadata, check_results=results)
        return
    yield dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key, metadata=metadata)
    yield from results
    raise blocked_failure(context.asset_key, record.failed_checks)
