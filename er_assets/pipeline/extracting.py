"""The extract stage's work: unload the partition's slice of the source table to the object
store (or keep the latest extract while the slice is unchanged) and check its profile."""

from __future__ import annotations

from typing import Any

from er_assets import layout
from er_assets.config import Domain
from er_assets.errors import UpstreamRefused
from er_assets.partitions import business_dates
from er_assets.pipeline import checks
from er_assets.pipeline.baselines import earlier_values
from er_assets.pipeline.handoff import CHECKS_PASSED, Extracted, asset_key, event_metadata, latest_result
from er_assets.pipeline.meter import Meter
from er_assets.resources.object_store import ObjectStore
from er_assets.resources.warehouses.base import Warehouse


def extract(context, domain: Domain, warehouse: Warehouse, object_store: ObjectStore) -> tuple[dict, list]:
    """Unload the partition's slice of the source table (or keep the latest extract's files
    while the slice is unchanged) and check its profile; a source table that no longer matches
    the configuration is reported as the failed schema check it is."""
    meter = Meter()
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
        counts = earlier_values(context.instance, asset_key(domain, "extract"), domain, context.partition_key, "rows")
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
    previous = latest_result(context.instance, asset_key(domain, "extract"), context.partition_key)
    if previous is None:
        return None
    try:
        earlier = Extracted.read(event_metadata(previous), previous.run_id, "the latest extract")
    except UpstreamRefused:
        return None  # not an extract this release can read: make a new one
    if earlier.fingerprint is None or earlier.profile_key != domain.profile_key:
        return None  # an older extract, or one profiled under other DQ settings
    rows, fingerprint = warehouse.slice_fingerprint(domain, start, end)
    if (rows, fingerprint) != (earlier.rows, earlier.fingerprint) or not object_store.list_files(earlier.uri):
        return None
    return earlier
