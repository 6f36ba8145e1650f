"""The asset factory: per domain, source -> extract -> matched -> loaded, partitioned.

Stages pass state through the Dagster instance, not files in /tmp: each stage reads the
latest materialisation of its upstream asset for the same partition (paths, counts, run id)
and adds its own. Behaviour differs between deployments only through the resources; no
asset body knows which warehouse, object store or Entity Resolution endpoint it has.
"""

import time

import dagster as dg

from er_assets.pipeline import checks, gate
from er_assets.pipeline.baselines import CHECKS_PASSED, earlier_values
from er_assets.config import Domain, Settings
from er_assets import layout
from er_assets.resources.entity_resolution import EntityResolutionResource
from er_assets.errors import MissingUpstream, UpstreamRefused
from er_assets.resources.match_output import find_output
from er_assets.pipeline.matching_job import Patience, adoptable_job, point_glue_table, run_matching_job
from er_assets.resources.object_store import ObjectStore, bytes_read
from er_assets.partitions import business_dates, partitions_def
from er_assets.defs.location import complete_run_tags
from er_assets.pipeline.recording import recording
from er_assets.resources.history import HistoryResource
from er_assets.resources.warehouses.base import Warehouse

class MatchingConfig(gate.GateConfig):
    """Per-run overrides of the configured EXECUTION_TIMEOUT and CHECK_INTERVAL (seconds), and
    of the data-quality gate on the extract."""

    execution_timeout: int | None = None
    check_interval: int | None = None


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
    record = latest_event(context, dg.AssetKey([domain.name, stage]), partition)
    if record is None:
        raise MissingUpstream(f"{domain.name}/{stage} has not been materialised for partition {partition}; run it first")
    return _metadata(record), record.run_id


def _extract_id(metadata: dict, run_id: str) -> str:
    """Which extract a materialisation of `extract` stands for: the run that wrote its files
    (an unchanged re-extract reuses an earlier run's files and says so)."""
    return metadata.get("extract_run_id") or run_id


def domain_assets(domain: Domain, settings: Settings) -> list:
    name = domain.name
    parts = partitions_def(domain)
    source = dg.AssetSpec(
        key=[name, "source"],
        group_name=name,
        description=f"Source table {domain.source.table}, observed, not materialised here.",
        metadata={"table": domain.source.table, "partition_column": domain.source.partition_column},
        kinds={"table"},
    )

    @dg.asset(
        key=[name, "extract"],
        deps=[source.key],
        partitions_def=parts,
        group_name=name,
        check_specs=checks.specs(domain, "extract", parts),
        description=f"The partition's slice of {domain.source.table}, unloaded as parquet to the object store.",
        kinds={"parquet"},
    )
    def extract(context: dg.AssetExecutionContext, warehouse: Warehouse, object_store: ObjectStore,
                history: HistoryResource):
        complete_run_tags(context, name)
        with recording(context, history, name, "extract") as record:
            started, read_before = time.monotonic(), bytes_read()
            start, end = business_dates(domain, context.partition_key)
            uri = layout.extract_uri(domain, context.partition_key, context.run_id)
            metadata = {"uri": uri, "first_date": start.isoformat(), "end_date": end.isoformat()}
            drift = warehouse.source_schema_problems(domain)
            if drift:
                # Unloading would only fail on the missing column: report it as the check it is.
                context.log.error(f"{domain.source.table} does not match the configuration: {drift}")
                metadata.update(rows=0, files=0, schema_problems=drift)
                results = checks.schema_drift_results(domain, drift)
            else:
                earlier = _unchanged_extract(context, warehouse, object_store, start, end)
                if earlier:
                    metadata.update(earlier, reused_extract=True)
                    context.log.info(f"the slice is unchanged since extract run {earlier['extract_run_id']} "
                                     f"({earlier['rows']} records): reusing its files {earlier['uri']}")
                else:
                    result = warehouse.unload_extract(domain, start, end, uri)
                    context.log.info(f"extracted {result.rows} records dated {start} to {end} into {uri}")
                    metadata.update(rows=result.rows, files=len(result.files), profile=result.profile,
                                    fingerprint=result.fingerprint, profile_key=domain.profile_key,
                                    extract_run_id=context.run_id)
                counts = earlier_values(context.instance, extract.key, domain, context.partition_key, "rows")
                results = checks.extract_results(domain, metadata["profile"], counts)
            metadata["orchestrator_bytes_read"] = bytes_read() - read_before
            metadata["seconds"] = round(time.monotonic() - started, 3)
            metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
            record.finish(metadata["rows"], metadata, results)
        yield dg.MaterializeResult(metadata=metadata, check_results=results)

    def _unchanged_extract(context, warehouse: Warehouse, object_store: ObjectStore, start, end) -> dict | None:
        """The metadata of the partition's latest extract when the source slice still has the
        same rows (count and fingerprint) and its files are still there, else None. Reusing it
        keeps the extract's identity, so a re-run of the whole pipeline re-attaches to the
        matching job already running (or done) for it instead of starting another."""
        previous = latest_event(context, extract.key, context.partition_key)
        if previous is None:
            return None
        seen = _metadata(previous)
        if "fingerprint" not in seen or seen.get("profile_key") != domain.profile_key:
            return None  # an older extract, or one profiled under other DQ settings
        rows, fingerprint = warehouse.slice_fingerprint(domain, start, end)
        if (rows, fingerprint) != (seen["rows"], seen["fingerprint"]) or not object_store.list_files(seen["uri"]):
            return None
        keep = ("uri", "rows", "files", "profile", "fingerprint", "profile_key")
        return {**{k: seen[k] for k in keep}, "extract_run_id": _extract_id(seen, previous.run_id)}

    @dg.asset(
        key=[name, "matched"],
        deps=[extract.key],
        partitions_def=parts,
        group_name=name,
        pool=settings.concurrency_pool,
        check_specs=checks.specs(domain, "matched", parts),
        description=f"AWS Entity Resolution workflow {domain.workflow_name} run on the partition's extract.",
        kinds={"aws"},
    )
    def matched(context: dg.AssetExecutionContext, config: MatchingConfig, entity_resolution: EntityResolutionResource,
                warehouse: Warehouse, object_store: ObjectStore, history: HistoryResource):
        complete_run_tags(context, name)
        with recording(context, history, name, "matched") as record:
            metadata, results = _match(context, config, entity_resolution, warehouse, object_store)
            record.finish(metadata["output_rows"], metadata, results)
        yield dg.MaterializeResult(metadata=metadata, check_results=results)

    def _match(context, config: MatchingConfig, entity_resolution: EntityResolutionResource, warehouse: Warehouse,
               object_store: ObjectStore):
        started, read_before = time.monotonic(), bytes_read()
        partition = context.partition_key
        override = gate.enforce(context, domain, "extract", config)
        upstream, extract_run = _upstream(context, domain, "extract", partition)
        extract_run = _extract_id(upstream, extract_run)
        if not object_store.list_files(upstream["uri"]):
            raise UpstreamRefused(f"{domain.name}/extract partition {partition}: the files of its latest extract "
                                  f"(run {extract_run}) are gone from {upstream['uri']}; re-run extract")
        er, glue = entity_resolution.clients()

        def observe(**metadata) -> None:
            # Written to the instance's event log before the call returns: durable.
            context.log_event(dg.AssetObservation(
                asset_key=matched.key, partition=partition,
                metadata={"extract_run_id": extract_run, "input_uri": upstream["uri"], **metadata},
            ))

        def point_input_at_extract() -> None:
            point_glue_table(glue, settings.glue_database, domain.glue_table, upstream["uri"])

        def record_job_id(job_id: str) -> None:
            observe(job_id=job_id)

        # One EXECUTION_TIMEOUT for the whole stage: adopting, starting and waiting.
        patience = Patience(config.execution_timeout or settings.execution_timeout,
                            config.check_interval or settings.check_interval, context.log.info)
        previous_job = _earlier_job(context, er, extract_run, record_job_id, patience)

        outcome = run_matching_job(er, domain.workflow_name, previous_job, point_input_at_extract,
                                   lambda intent: observe(**intent), record_job_id, patience)
        output = find_output(object_store.list_files, outcome.output_path, domain.workflow_name, outcome.job_id,
                             outcome.metrics.get("totalRecordsProcessed", 0))
        # Counted where the output is (Snowflake over the stage; locally DuckDB over the folder).
        summary = warehouse.match_output_figures(domain, output.success_uri, output.error_uri)
        rejected = summary["rejected_rows"]
        # ML_MATCHING output carries a ConfidenceLevel per matched record instead of a MatchRule.
        confidence = summary["confidence"]
        context.log.info(f"matching job {outcome.job_id}: {summary['records']} records, "
                         f"{summary['match_ids']} MatchIDs, match rate {summary['match_rate']}%")
        metadata = {
            "job_id": outcome.job_id,
            "output_uri": output.success_uri,
            "extract_run_id": extract_run,
            "input_records": outcome.metrics.get("inputRecords", 0),
            "records_processed": outcome.metrics.get("totalRecordsProcessed", 0),
            "records_not_processed": outcome.metrics.get("recordsNotProcessed", 0),
            "match_ids": summary["match_ids"],
            "output_rows": summary["records"],
            "rejected_rows": rejected,
            "match_rate": summary["match_rate"],
            "service_match_ids": outcome.metrics.get("matchIDs", 0),
            # Record data read by this process for the stage: 0 in production.
            "orchestrator_bytes_read": bytes_read() - read_before,
            "reused_job": outcome.reused,
            "reattached_job": outcome.attached,
            "seconds": round(time.monotonic() - started, 3),
            **override,
        }
        rates = earlier_values(context.instance, matched.key, domain, partition, "match_rate")
        confidences = None
        if confidence is not None:
            metadata["low_confidence_records"] = confidence["below_threshold"]
            if confidence["mean"] is not None:  # the baseline's figure: absent when nothing matched
                metadata["mean_confidence"] = confidence["mean"]
            confidences = earlier_values(context.instance, matched.key, domain, partition, "mean_confidence")
        results = checks.matched_results(domain, upstream["rows"], outcome.metrics, summary, rejected, rates,
                                         confidence, confidences)
        metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
        return metadata, results

    def _earlier_job(context, er, extract_run: str, record_job_id, patience) -> str | None:
        """The job an earlier attempt started for this very extract (it may still be running):
        the one it recorded, or, when it died between StartMatchingJob and recording the id,
        the job its recorded intent identifies in the service's own list."""
        previous = latest_event(context, matched.key, context.partition_key, observation=True)
        seen = _metadata(previous) if previous is not None else {}
        if seen.get("extract_run_id") != extract_run:
            return None
        if seen.get("job_id") or "intent_since" not in seen:
            return seen.get("job_id")
        since = float(seen["intent_since"])
        claimed = {
            str(value) for record in context.instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=matched.key, after_timestamp=since), limit=1000).records
            if record.partition_key != context.partition_key
            and (value := _metadata(record).get("job_id"))
        }
        job_id = adoptable_job(er, domain.workflow_name, seen, claimed, patience)
        if job_id:
            context.log.info(f"adopting matching job {job_id}: an earlier attempt started it for this extract "
                             "but stopped before recording its id")
            record_job_id(job_id)
        return job_id

    @dg.asset(
        key=[name, "loaded"],
        deps=[matched.key],
        partitions_def=parts,
        group_name=name,
        check_specs=checks.specs(domain, "loaded", parts),
        description=f"Match output loaded into {domain.target.table}, replacing the partition's rows.",
        kinds={"table"},
    )
    def loaded(context: dg.AssetExecutionContext, config: gate.GateConfig, warehouse: Warehouse,
               history: HistoryResource):
        complete_run_tags(context, name)
        with recording(context, history, name, "loaded") as record:
            started, read_before = time.monotonic(), bytes_read()
            override = gate.enforce(context, domain, "matched", config)
            upstream, matched_run = _upstream(context, domain, "matched", context.partition_key)
            extracted, extract_run = _upstream(context, domain, "extract", context.partition_key)
            override.update(gate.enforce_lineage(context, domain, "matched", upstream["extract_run_id"],
                                                 _extract_id(extracted, extract_run), config))
            results = []

            def accept(staged: dict) -> bool:
                results[:] = checks.loaded_results(domain, upstream["output_rows"], extracted["rows"], staged,
                                                   upstream.get("match_ids"))
                results.append(checks.no_value_loss(domain, (extracted.get("profile") or {}).get("non_empty"),
                                                    staged["non_empty"]))
                return not checks.blocking_failures(results)

            result = warehouse.load_matches(domain, context.partition_key, upstream["output_uri"], accept)
            if result.replaced:
                context.log.info(f"loaded {result.rows} rows into {result.table} for partition {context.partition_key}")
            else:
                context.log.error(f"refused the match output: the load's checks failed on its staged rows; partition "
                                  f"{context.partition_key} of {result.table} left untouched")
            metadata = {
                "rows": result.rows,
                "table": result.table,
                "replaced": result.replaced,
                "job_id": upstream["job_id"],
                "matched_run_id": matched_run,
                "orchestrator_bytes_read": bytes_read() - read_before,
                "seconds": round(time.monotonic() - started, 3),
                **override,
            }
            metadata[CHECKS_PASSED] = not checks.blocking_failures(results)
            record.finish(result.rows, metadata, results)
        yield dg.MaterializeResult(metadata=metadata, check_results=results)

    return [source, extract, matched, loaded]
