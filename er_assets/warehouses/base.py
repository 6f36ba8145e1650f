"""The seam between the stages and a warehouse: the few bulk operations the pipeline needs.

No asset knows which warehouse it has. Every operation moves data in bulk inside the
warehouse (unload to files, load from files); no rows pass through the Dagster worker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

from er_assets.config import Domain

# Unique ids longer than this are rejected by rule-based matching (AWS Entity Resolution).
MAX_UNIQUE_ID_LENGTH = 38


@dataclass(frozen=True)
class ExtractResult:
    rows: int
    files: list[str]
    profile: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LoadResult:
    rows: int
    table: str


class Warehouse(dg.ConfigurableResource):
    """What the stages ask of a warehouse."""

    def unload_extract(self, domain: Domain, start: dt.date, end: dt.date, dest_uri: str) -> ExtractResult:
        """Write the schema columns of source rows with start <= partition date < end to
        parquet under dest_uri (replacing what was there) and profile them for the DQ checks."""
        raise NotImplementedError

    def load_matches(self, domain: Domain, partition_key: str, src_uri: str) -> LoadResult:
        """Replace the partition's rows in the target table with the match output CSV under
        src_uri, in one transaction."""
        raise NotImplementedError

    def target_stats(self, domain: Domain, partition_key: str) -> dict:
        """Rows and duplicate record ids of the partition in the target table."""
        raise NotImplementedError

    def check_ready(self, domain: Domain) -> list[str]:
        """Problems that would stop this domain's stages (missing tables, no access)."""
        raise NotImplementedError
