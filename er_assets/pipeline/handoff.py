"""What each stage hands the next: the fields one stage writes into its materialisation
metadata and the next reads back, as typed records, written and read here only.

A stage's metadata also holds figures for people (durations, rates, check inputs) that no
later stage reads; those stay plain metadata. A record field missing from a materialisation
(written by a release before the field existed, or reported by hand) refuses the reading
stage with the key named, exit 3, instead of a KeyError deep inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from er_assets.errors import UpstreamRefused


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
