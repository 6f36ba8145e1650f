"""What each stage hands the next: the fields one stage writes into its materialisation
metadata and the next reads back, as typed records, written and read here only.

A stage whose blocking checks fail does not materialise its asset, so Dagster shows that
partition as failed, not materialised (`defs/assets.py`). Its result is kept all the same, as
an observation of the asset whose metadata says `checks_passed: false`: the gate's override,
the lineage gate and the extract's reuse read "the stage's latest result", materialised or
blocked (`latest_result`), as they read the blocked materialisation before.

A stage's metadata also holds figures for people (durations, rates, check inputs) that no
later stage reads; those stay plain metadata. A record field missing from a materialisation
(written by a release before the field existed, or reported by hand) refuses the reading
stage with the key named, exit 3, instead of a KeyError deep inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import dagster as dg

from er_assets.config import Domain
from er_assets.errors import MissingUpstream, UpstreamRefused

# Metadata of every stage result: did its blocking checks pass? False only on the observation
# that keeps a blocked result (and on materialisations made before blocked results stopped
# materialising).
CHECKS_PASSED = "checks_passed"
# Observations read at a time to find a blocked result; and all that the matched stage's job
# journal reads to find a job another attempt recorded (it observes its job's intent and id,
# a few per attempt).
OBSERVATIONS_READ = 50


def _need(metadata: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in metadata:
        raise UpstreamRefused(f"{where}: its metadata has no '{key}' (made by an older release?); re-run that stage")
    return metadata[key]


def _written(record: Any) -> dict[str, Any]:
    """The record's fields as metadata; an absent optional field is left out, not None."""
    return {f.name: value for f in fields(record) if (value := getattr(record, f.name)) is not None}


@dataclass(frozen=True)
class Extracted:
    """An extract: where its files are and what they hold. `extract_run_id` names the run that
    wrote the files, which is an earlier run when an unchanged slice reused them."""

    uri: str
    rows: int
    files: int
    extract_run_id: str
    fingerprint: str | None = None  # absent when the source table failed its schema check
    profile: dict | None = None
    profile_key: str | None = None
    context_rows: int = 0

    def metadata(self) -> dict[str, Any]:
        return _written(self)

    @classmethod
    def read(cls, metadata: Mapping[str, Any], run_id: str, where: str) -> Extracted:
        """From a materialisation of `extract` by run `run_id` (an extract made before the
        field existed names no run of its own: its files are its run's)."""
        return cls(
            uri=str(_need(metadata, "uri", where)),
            rows=int(_need(metadata, "rows", where)),
            files=int(metadata.get("files", 0)),
            extract_run_id=str(metadata.get("extract_run_id") or run_id),
            fingerprint=metadata.get("fingerprint"),
            profile=metadata.get("profile"),
            profile_key=metadata.get("profile_key"),
            context_rows=int(metadata.get("context_rows", 0)),
        )


@dataclass(frozen=True)
class Matched:
    """A matching stage's outcome: the job, its output, and which extract it matched."""

    job_id: str
    output_uri: str
    extract_run_id: str
    output_rows: int
    match_ids: int | None = None

    def metadata(self) -> dict[str, Any]:
        return _written(self)

    @classmethod
    def read(cls, metadata: Mapping[str, Any], where: str) -> Matched:
        match_ids = metadata.get("match_ids")
        return cls(
            job_id=str(_need(metadata, "job_id", where)),
            output_uri=str(_need(metadata, "output_uri", where)),
            extract_run_id=str(_need(metadata, "extract_run_id", where)),
            output_rows=int(_need(metadata, "output_rows", where)),
            match_ids=None if match_ids is None else int(match_ids),
        )


# reading them from the Dagster instance --------------------------------------------------


def asset_key(domain: Domain, stage: str) -> dg.AssetKey:
    return dg.AssetKey([domain.name, stage])


def latest_event(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, observation: bool = False):
    """The newest materialisation (or observation) record of `key` for `partition`, or None."""
    flt = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition])
    fetch = instance.fetch_observations if observation else instance.fetch_materializations
    records = fetch(flt, limit=1).records
    return records[0] if records else None


def latest_result(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str):
    """The record of the stage's newest result for `partition`: its latest materialisation, or
    the observation of a blocked result made after it; None when the stage never ended.

    Every observation since the materialisation is read, newest first, a page at a time, so
    a blocked result is found however many notes (the matching job's intents and ids) came
    after it (`AssetRecordsFilter.after_storage_id`, public in Dagster 1.13)."""
    materialised = latest_event(instance, key, partition)
    flt = dg.AssetRecordsFilter(
        asset_key=key,
        asset_partitions=[partition],
        after_storage_id=materialised.storage_id if materialised is not None else None,
    )
    cursor = None
    while True:
        page = instance.fetch_observations(flt, limit=OBSERVATIONS_READ, cursor=cursor)
        for record in page.records:
            if event_metadata(record).get(CHECKS_PASSED) is False:
                return record
        if not page.has_more:
            return materialised
        cursor = page.cursor


def event_metadata(record) -> dict:
    event = record.asset_materialization or record.asset_observation
    return {k: v.value for k, v in event.metadata.items()}


def upstream_metadata(context, domain: Domain, stage: str, partition: str) -> tuple[dict, str]:
    record = latest_result(context.instance, asset_key(domain, stage), partition)
    if record is None:
        raise MissingUpstream(
            f"{domain.name}/{stage} has not been materialised for partition {partition}; run it first"
        )
    return event_metadata(record), record.run_id


def latest_extract(context, domain: Domain, partition: str) -> Extracted:
    """The partition's latest extract, as the extract stage handed it on."""
    metadata, run_id = upstream_metadata(context, domain, "extract", partition)
    return Extracted.read(metadata, run_id, f"{domain.name}/extract partition {partition} (run {run_id})")


def latest_match(context, domain: Domain, partition: str) -> tuple[Matched, str]:
    """The partition's latest matching outcome, and the run that made it."""
    metadata, run_id = upstream_metadata(context, domain, "matched", partition)
    return Matched.read(metadata, f"{domain.name}/matched partition {partition} (run {run_id})"), run_id
