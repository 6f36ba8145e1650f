"""The matched stage's work: run the domain's matching job on the partition's latest extract
(re-attaching to, or reusing, the job an earlier attempt started for it), count its output
and check it. The job's id and the intent before its start are journalled as observations,
so a later attempt finds the job even after a kill."""

from __future__ import annotations

import dagster as dg

from er_assets.config import Domain, Settings
from er_assets.errors import UpstreamRefused
from er_assets.pipeline import checks, gate
from er_assets.pipeline.baselines import earlier_values
from er_assets.pipeline.handoff import (
    CHECKS_PASSED,
    OBSERVATIONS_READ,
    Extracted,
    Matched,
    asset_key,
    event_metadata,
    latest_event,
    latest_extract,
)
from er_assets.pipeline.matching_job import JobOutcome, Patience, adoptable_job, point_glue_table, run_matching_job
from er_assets.pipeline.meter import Meter
from er_assets.resources.entity_resolution import EntityResolutionResource
from er_assets.resources.match_output import find_output
from er_assets.resources.object_store import ObjectStore
from er_assets.resources.warehouses.base import Warehouse


class MatchingConfig(gate.GateConfig):
    """Per-run overrides of the configured EXECUTION_TIMEOUT and CHECK_INTERVAL (seconds), and
    of the data-quality gate on the extract."""

    execution_timeout: int | None = None
    check_interval: int | None = None


def match(
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
    meter = Meter()
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
    upstream = latest_extract(context, domain, partition)
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
        self.key = asset_key(domain, "matched")

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
        for record in self.context.instance.fetch_observations(flt, limit=OBSERVATIONS_READ).records:
            seen = event_metadata(record)
            if seen.get("extract_run_id") == self.extract_run and seen.get("job_id"):
                return str(seen["job_id"])
        return None

    def earlier_job(self, er, patience: Patience) -> str | None:
        """The job an earlier attempt started for this very extract (it may still be running):
        the one it recorded, or, when it died between StartMatchingJob and recording the id,
        the job its recorded intent identifies in the service's own list."""
        context, partition = self.context, self.context.partition_key
        previous = latest_event(context.instance, self.key, partition, observation=True)
        seen = event_metadata(previous) if previous is not None else {}
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
            if record.partition_key != partition and (value := event_metadata(record).get("job_id"))
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
    key, partition = asset_key(domain, "matched"), context.partition_key
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
