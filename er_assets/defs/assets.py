"""The asset factory: per domain, source -> extract -> matched -> loaded, partitioned.

Stages pass state through the Dagster instance, not files in /tmp: each stage reads the
latest materialisation of its upstream asset for the same partition (paths, counts, run id)
and adds its own. Behaviour differs between deployments only through the resources; no
asset body knows which warehouse, object store or Entity Resolution endpoint it has.

`domain_assets` only declares the assets; each stage's work is a module-level function below
(`_extract`, `_match`, `_load`), given the domain and the resources it uses, that returns the
materialisation's metadata and check results.
"""

import time
from typing import Any

import dagster as dg

from er_assets import interrupts, layout
from er_assets.config import Domain, Settings
from er_assets.defs.location import complete_run_tags
from er_assets.errors import MissingUpstream, UpstreamRefused
from er_assets.partitions import business_dates, partitions_def
from er_assets.pipeline import checks, gate
from er_assets.pipeline.baselines import CHECKS_PASSED, earlier_values
from er_assets.pipeline.handoff import Extracted, Matched
from er_assets.pipeline.matching_job import JobOutcome, Patience, adoptable_job, point_glue_table, run_matching_job
from er_assets.pipeline.recording import recording
from er_assets.resources.entity_resolution import EntityResolutionResource
from er_assets.resources.history import HistoryResource
from er_assets.resources.match_output import find_output
from er_assets.resources.object_store import ObjectStore, bytes_read
from er_assets.resources.warehouses.base import Warehouse


class MatchingConfig(gate.GateConfig):
    """Per-run overrides of the configured EXECUTION_TIMEOUT and CHECK_INTERVAL (seconds), and
    of the data-quality gate on the extract."""

    execution_timeout: int | None = None
    check_interval: int | None = None


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
        deps=[_key(domain, upstream)],
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
        yield _recorded(
            context,
            history,
            domain,
            settings,
            "extract",
            "rows",
            lambda: _extract(context, domain, warehouse, object_store),
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
        yield _recorded(
            context,
            history,
            domain,
            settings,
            "matched",
            "output_rows",
            lambda: _match(context, domain, settings, config, entity_resolution, warehouse, object_store),
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
        yield _recorded(
            context, history, domain, settings, "loaded", "rows", lambda: _load(context, domain, config, warehouse)
        )

    return loaded


def _recorded(
    context, history: HistoryResource, domain: Domain, settings: Settings, stage: str, rows: str, work
) -> dg.MaterializeResult:
    """Do a stage's `work` (-> metadata, check results) inside its job-history row, which counts
    `metadata[rows]` records (and, in production, whose end is published to CloudWatch in
    `settings.region`). First the run gets the tags a bridge run has, whoever started it."""
    complete_run_tags(context, domain.name)
    with recording(context, history, domain.name, stage, settings.region) as record:
        metadata, results = work()
        record.finish(metadata[rows], metadata, results)
    return dg.MaterializeResult(metadata=metadata, check_results=results)


class _Meter:
    """What a stage costs this process from its start: wall-clock seconds, and the record data
    read here (0 in production, where the warehouse reads it)."""

    def __init__(self):
        self.started, self.read_before = time.monotonic(), bytes_read()

    def figures(self) -> dict:
        return {
            "orchestrator_bytes_read": bytes_read() - self.read_before,
            "seconds": round(time.monotonic() - self.started, 3),
        }


def _key(domain: Domain, stage: str) -> dg.AssetKey:
    return dg.AssetKey([domain.name, stage])


def latest_event(context, key: dg.AssetKey, partition: str, observation: bool = False):
    """The newest materialisation (or observation) record of `key` for `partition`, or None."""
    flt = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition])
    fetch = context.instance.fetch_observations if observation else context.instance.fetch_materializations
    records = fetch(flt, limit=1).records
    return records[0] if records else None


def _metadata(record) -> dict:
    event = record.asset_materialization or record.asset_observation
    return {k: v.value for k, v in event.metadata.items()}


def _upstream(context, domain: Domain, stage: str, partition: str) -> tuple[dict, str]:
    record = latest_event(context, _key(domain, stage), partition)
    if record is None:
        raise MissingUpstream(
            f"{domain.name}/{stage} has not been materialised for partition {partition}; run it first"
        )
    return _metadata(record), record.run_id


def _extracted(context, domain: Domain, partition: str) -> Extracted:
    """The partition's latest extract, as the extract stage handed it on."""
    metadata, run_id = _upstream(context, domain, "extract", partition)
    return Extracted.read(metadata, run_id, f"{domain.name}/extract partition {partition} (run {run_id})")


def _matched(context, domain: Domain, partition: str) -> tuple[Matched, str]:
    """The partition's latest matching outcome, and the run that made it."""
    metadata, run_id = _upstream(context, domain, "matched", partition)
    return Matched.read(metadata, f"{domain.name}/matched partition {partition} (run {run_id})"), run_id


# extract ------------------------------------------------------------------------------------


def _extract(context, domain: Domain, warehouse: Warehouse, object_store: ObjectStore) -> tuple[dict, list]:
    """Unload the partition's slice of the source table (or keep the latest extract's files
    while the slice is unchanged) and check its profile; a source table that no longer matches
    the configuration is reported as the failed schema check it is."""
    meter = _Meter()
    start, end = business_dates(domain, context.partition_key)
    uri = layout.extract_uri(domain, context.partition_key, context.run_id)
    metadata: dict[str, Any] = {"uri": uri, "first_date": start.isoformat(), "end_date": end.isoformat()}
    drift = warehouse.source_schema_problems(domain)
    if drift:
        # Unloading would only fail on the missing column: report it as the check it is.
        context.log.error(f"{domain.source.table} does not match the configuration: {drift}")
        metadata.update(rows=0, files=0, schema_problems=drift)
        results = checks.schema_drift_results(domain, drift)
    else:
        metadata.update(_unload(context, domain, warehouse, object_store, start, end, uri))
        counts = earlier_values(context.instance, _key(domain, "extract"), domain, context.partition_key, "rows")
        results = checks.extract_results(domain, metadata["profile"], counts)
    metadata.update(meter.figures())
    metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
    return metadata, results


def _unload(context, domain: Domain, warehouse: Warehouse, object_store: ObjectStore, start, end, uri: str) -> dict:
    """The extract's metadata: the latest extract's, when its slice is unchanged, else that of a
    new unload to `uri`."""
    earlier = _unchanged_extract(context, domain, warehouse, object_store, start, end)
    if earlier:
        context.log.info(
            f"the slice is unchanged since extract run {earlier.extract_run_id} "
            f"({earlier.rows} records): reusing its files {earlier.uri}"
        )
        return {**earlier.metadata(), "reused_extract": True}
    result = warehouse.unload_extract(domain, start, end, uri)
    context.log.info(f"extracted {result.rows} records dated {start} to {end} into {uri}")
    if result.context_rows:
        context.log.info(f"added {result.context_rows} records of known entities as context for the matching job")
    return Extracted(
        uri=uri,
        rows=result.rows,
        files=len(result.files),
        extract_run_id=context.run_id,
        fingerprint=result.fingerprint,
        profile=result.profile,
        profile_key=domain.profile_key,
        context_rows=result.context_rows,
    ).metadata()


def _unchanged_extract(
    context, domain: Domain, warehouse: Warehouse, object_store: ObjectStore, start, end
) -> Extracted | None:
    """The partition's latest extract when the source slice still has the same rows (count
    and fingerprint) and its files are still there, else None. Reusing it keeps the extract's
    identity, so a re-run of the whole pipeline re-attaches to the matching job already
    running (or done) for it instead of starting another."""
    previous = latest_event(context, _key(domain, "extract"), context.partition_key)
    if previous is None:
        return None
    seen = _metadata(previous)
    if "uri" not in seen or "rows" not in seen:
        return None  # not an extract this release can read: make a new one
    earlier = Extracted.read(seen, previous.run_id, f"{domain.name}/extract partition {context.partition_key}")
    if earlier.fingerprint is None or earlier.profile_key != domain.profile_key:
        return None  # an older extract, or one profiled under other DQ settings
    rows, fingerprint = warehouse.slice_fingerprint(domain, start, end)
    if (rows, fingerprint) != (earlier.rows, earlier.fingerprint) or not object_store.list_files(earlier.uri):
        return None
    return earlier


# matched ------------------------------------------------------------------------------------


def _match(
    context,
    domain: Domain,
    settings: Settings,
    config: MatchingConfig,
    entity_resolution: EntityResolutionResource,
    warehouse: Warehouse,
    object_store: ObjectStore,
) -> tuple[dict, list]:
    """Run the domain's matching job on the partition's latest extract (re-attaching to, or
    reusing, the job an earlier attempt started for it), count its output and check it."""
    meter = _Meter()
    override = gate.enforce(context, domain, "extract", config)
    upstream = _extract_to_match(context, domain, object_store)
    extract_run = upstream.extract_run_id
    outcome = _run_job(context, domain, settings, config, entity_resolution, upstream.uri, extract_run)
    output = find_output(
        object_store.list_files,
        outcome.output_path,
        domain.workflow_name,
        outcome.job_id,
        outcome.metrics.get("totalRecordsProcessed", 0),
    )
    # Counted where the output is (Snowflake over the stage; locally DuckDB over the folder).
    summary = warehouse.match_output_figures(domain, output.success_uri, output.error_uri, upstream.uri)
    context.log.info(
        f"matching job {outcome.job_id}: {summary['records']} records, "
        f"{summary['match_ids']} MatchIDs, match rate {summary['match_rate']}%"
    )
    handed_on = Matched(
        job_id=outcome.job_id,
        output_uri=output.success_uri,
        extract_run_id=extract_run,
        output_rows=summary["records"],
        match_ids=summary["match_ids"],
    )
    metadata = {
        **handed_on.metadata(),
        "input_records": outcome.metrics.get("inputRecords", 0),
        "records_processed": outcome.metrics.get("totalRecordsProcessed", 0),
        "records_not_processed": outcome.metrics.get("recordsNotProcessed", 0),
        "rejected_rows": summary["rejected_rows"],
        "match_rate": summary["match_rate"],
        "service_match_ids": outcome.metrics.get("matchIDs", 0),
        "reused_job": outcome.reused,
        "reattached_job": outcome.attached,
        **meter.figures(),
        **override,
    }
    metadata["context_records"] = upstream.context_rows
    results = _matched_checks(context, domain, upstream.rows, outcome, summary, metadata)
    metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
    return metadata, results


def _extract_to_match(context, domain: Domain, object_store: ObjectStore) -> Extracted:
    """The partition's latest extract. Refused when its files are gone from the object store."""
    partition = context.partition_key
    upstream = _extracted(context, domain, partition)
    if not object_store.list_files(upstream.uri):
        raise UpstreamRefused(
            f"{domain.name}/extract partition {partition}: the files of its latest extract "
            f"(run {upstream.extract_run_id}) are gone from {upstream.uri}; re-run extract"
        )
    return upstream


def _run_job(
    context,
    domain: Domain,
    settings: Settings,
    config: MatchingConfig,
    entity_resolution: EntityResolutionResource,
    input_uri: str,
    extract_run: str,
) -> JobOutcome:
    er, glue = entity_resolution.clients()
    journal = _JobJournal(context, domain, extract_run, input_uri)
    # One EXECUTION_TIMEOUT for the whole stage: adopting, starting and waiting.
    patience = Patience(
        config.execution_timeout or settings.execution_timeout,
        config.check_interval or settings.check_interval,
        context.log.info,
    )
    previous_job = journal.earlier_job(er, patience)

    def point_input_at_extract() -> None:
        point_glue_table(glue, settings.glue_database, domain.glue_table, input_uri)

    return run_matching_job(
        er,
        domain.workflow_name,
        previous_job,
        point_input_at_extract,
        journal.record_intent,
        journal.record_job_id,
        patience,
        journal.started_elsewhere,
    )


class _JobJournal:
    """What the matched stage notes of its matching job, as observations of `<domain>/matched`
    for the partition: the intent just before StartMatchingJob, then the job id. An observation
    is in the instance's event log before `log_event` returns, so the notes are durable: a later
    attempt on the same extract finds the job even after a kill."""

    def __init__(self, context, domain: Domain, extract_run: str, input_uri: str):
        self.context, self.domain, self.extract_run, self.input_uri = context, domain, extract_run, input_uri
        self.key = _key(domain, "matched")

    def record_intent(self, intent: dict) -> None:
        self._observe(**intent)

    def record_job_id(self, job_id: str) -> None:
        self._observe(job_id=job_id)

    def _observe(self, **metadata) -> None:
        self.context.log_event(
            dg.AssetObservation(
                asset_key=self.key,
                partition=self.context.partition_key,
                metadata={"extract_run_id": self.extract_run, "input_uri": self.input_uri, **metadata},
            )
        )

    def started_elsewhere(self) -> str | None:
        """The newest job id another attempt recorded for this very extract (this attempt
        records none before its own start succeeds)."""
        flt = dg.AssetRecordsFilter(asset_key=self.key, asset_partitions=[self.context.partition_key])
        for record in self.context.instance.fetch_observations(flt, limit=50).records:
            seen = _metadata(record)
            if seen.get("extract_run_id") == self.extract_run and seen.get("job_id"):
                return str(seen["job_id"])
        return None

    def earlier_job(self, er, patience: Patience) -> str | None:
        """The job an earlier attempt started for this very extract (it may still be running):
        the one it recorded, or, when it died between StartMatchingJob and recording the id,
        the job its recorded intent identifies in the service's own list."""
        context, partition = self.context, self.context.partition_key
        previous = latest_event(context, self.key, partition, observation=True)
        seen = _metadata(previous) if previous is not None else {}
        if seen.get("extract_run_id") != self.extract_run:
            return None
        if seen.get("job_id") or "intent_since" not in seen:
            return seen.get("job_id")
        since = float(seen["intent_since"])
        claimed = {
            str(value)
            for record in context.instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=self.key, after_timestamp=since), limit=1000
            ).records
            if record.partition_key != partition and (value := _metadata(record).get("job_id"))
        }
        job_id = adoptable_job(er, self.domain.workflow_name, seen, claimed, patience)
        if job_id:
            context.log.info(
                f"adopting matching job {job_id}: an earlier attempt started it for this extract "
                "but stopped before recording its id"
            )
            self.record_job_id(job_id)
        return job_id


def _matched_checks(
    context, domain: Domain, extracted_rows: int, outcome: JobOutcome, summary: dict, metadata: dict
) -> list:
    """The matched stage's check results, judged against earlier partitions' match rates (and,
    for ML matching, mean confidence); adds the confidence figures to `metadata`."""
    key, partition = _key(domain, "matched"), context.partition_key
    rates = earlier_values(context.instance, key, domain, partition, "match_rate")
    # ML_MATCHING output carries a ConfidenceLevel per matched record instead of a MatchRule.
    confidence, confidences = summary["confidence"], None
    if confidence is not None:
        metadata["low_confidence_records"] = confidence["below_threshold"]
        if confidence["mean"] is not None:  # the baseline's figure: absent when nothing matched
            metadata["mean_confidence"] = confidence["mean"]
        confidences = earlier_values(context.instance, key, domain, partition, "mean_confidence")
    return checks.matched_results(
        domain,
        extracted_rows,
        outcome.metrics,
        summary,
        summary["rejected_rows"],
        rates,
        confidence,
        confidences,
        metadata["context_records"],
    )


# loaded -------------------------------------------------------------------------------------


def _load(context, domain: Domain, config: gate.GateConfig, warehouse: Warehouse) -> tuple[dict, list]:
    """Replace the partition's rows of the target table with its latest match output, behind
    the check gate and the lineage gate. The load's checks judge the staged rows before the
    swap: when a blocking one fails, the partition is left untouched."""
    meter = _Meter()
    partition = context.partition_key
    override = gate.enforce(context, domain, "matched", config)
    upstream, matched_run = _matched(context, domain, partition)
    extracted = _extracted(context, domain, partition)
    override.update(
        gate.enforce_lineage(context, domain, "matched", upstream.extract_run_id, extracted.extract_run_id, config)
    )
    results: list[dg.AssetCheckResult] = []
    churn = earlier_values(context.instance, _key(domain, "loaded"), domain, partition, "entity_churn_rate")

    def accept(staged: dict) -> bool:
        interrupts.check()  # the last moment before the commit: a run signalled meanwhile swaps nothing
        results[:] = checks.loaded_results(domain, upstream.output_rows, extracted.rows, staged, upstream.match_ids)
        results.append(checks.no_value_loss(domain, (extracted.profile or {}).get("non_empty"), staged["non_empty"]))
        results.extend(checks.identity_results(domain, staged["identity"], churn))
        return not checks.blocking_failures(results)

    result = warehouse.load_matches(domain, partition, upstream.output_uri, accept, extracted.uri, context.run_id)
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
