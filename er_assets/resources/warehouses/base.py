"""The seam between the stages and a warehouse: the few bulk operations the pipeline needs.

No asset knows which warehouse it has. Every operation moves data in bulk inside the
warehouse (unload to files, load from files); no rows pass through the Dagster worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import dagster as dg

from er_assets.config import Domain

# Unique ids longer than this are rejected by rule-based matching (AWS Entity Resolution).
MAX_UNIQUE_ID_LENGTH = 38
# Offending record ids a check shows per problem: enough to start looking, and ids only,
# never values, so no personal data reaches the event log.
SAMPLE_IDS = 5


def sample_labels(domain: Domain) -> list[str]:
    """The problems the extract profile samples record ids for, in query order."""
    return (
        ["duplicate_ids", "long_ids"]
        + [f"null:{f}" for f in domain.dq.required_fields]
        + [f"format:{name}" for name, _, _ in domain.format_fields]
    )


def named_row(cursor) -> dict[str, Any]:
    """The one row a counting query (`queries._counts`) returned, by column name."""
    row = cursor.fetchone()
    return dict(zip((column[0] for column in cursor.description), row))


def non_empty(domain: Domain, counts: Mapping[str, Any]) -> dict[str, int]:
    """Non-empty values per schema column from `queries.non_empty_counts`' named counts; a
    column not counted (the rows lack it) has none, and over no rows a count is NULL: 0."""
    return {c: int(counts.get(f"non_empty:{c}") or 0) for c in domain.schema.columns}


def assemble_profile(domain: Domain, counts: Mapping[str, Any], samples) -> dict:
    """The extract profile, the same dict from every warehouse.

    `counts`: `queries.profile_sql`'s named counts (`named_row`). `samples`: (label, record
    id) rows, labels as `sample_labels` names them; at most SAMPLE_IDS per label, so this
    loops over a handful of ids, never over records.
    """

    def count(name: str) -> int:
        return int(counts[name] or 0)  # over no rows a COUNT_IF is NULL

    by_label: dict[str, list[str]] = {label: [] for label in sample_labels(domain)}
    for label, record_id in samples:
        by_label[label].append(str(record_id))
    required = domain.dq.required_fields
    return {
        "rows": count("rows"),
        "empty_ids": count("empty_ids"),
        "duplicate_ids": count("duplicate_ids"),
        "long_ids": count("long_ids"),
        "null_counts": {f: count(f"null:{f}") for f in required},
        "non_empty": non_empty(domain, counts),
        "formats": {
            name: {
                "type": attr_type,
                "values": count(f"values:{name}"),
                "invalid": count(f"format:{name}"),
                "sample_ids": by_label[f"format:{name}"],
            }
            for name, attr_type, _ in domain.format_fields
        },
        "sample_ids": {
            "duplicate_ids": by_label["duplicate_ids"],
            "long_ids": by_label["long_ids"],
            "required_fields": {f: by_label[f"null:{f}"] for f in required},
        },
    }


def schema_problems(domain: Domain, found: dict[str, str], not_text: tuple[str, ...], where: str) -> dict[str, str]:
    """`Warehouse.source_schema_problems` from the source table's columns as the warehouse's
    catalogue lists them (`found`: upper-case name -> type, empty when the table is not in
    `where`); `not_text`: the type prefixes that cannot be extracted as text."""
    if not found:
        return {domain.source.table: f"table not found in {where}"}
    part = domain.source.partition_column
    problems = {c: "missing" for c in [*domain.schema.columns, part] if c.upper() not in found}
    for column in domain.schema.columns:
        kind = found.get(column.upper(), "")
        if kind.upper().startswith(not_text) or "[" in kind:  # `[` marks DuckDB's LIST and ARRAY types
            problems[column] = f"type {kind} cannot be extracted as text"
    date_kind = found.get(part.upper())
    if date_kind and not date_kind.upper().startswith(("DATE", "TIMESTAMP")):
        problems[part] = f"type {date_kind} is not a DATE or TIMESTAMP"
    return problems


def target_figures(counts, samples) -> dict:
    """Rows, duplicate record ids, rows without a MatchID and distinct MatchIDs of a partition's
    rows (staged or in the target), with sample ids; `samples` are (label, record id) rows,
    labels duplicate_ids and missing_match_ids."""
    rows, duplicates, missing, match_ids = (int(v or 0) for v in counts)
    by_label: dict[str, list[str]] = {"duplicate_ids": [], "missing_match_ids": []}
    for label, record_id in samples:
        by_label[label].append(str(record_id))
    return {
        "rows": rows,
        "duplicate_ids": duplicates,
        "missing_match_ids": missing,
        "match_ids": match_ids,
        "sample_ids": by_label,
    }


class OutputCounts(NamedTuple):
    """A job output's counts (`queries.output_counts_sql`, read by name): the partition's own
    records, their MatchIDs, and those of them sharing their MatchID with another record."""

    records: int = 0
    match_ids: int = 0
    matched: int = 0

    @classmethod
    def read(cls, row: Mapping[str, Any]) -> OutputCounts:
        return cls(**{name: int(row[name] or 0) for name in cls._fields})


def match_figures(counts: OutputCounts, rejected_rows: int, confidence: dict | None = None) -> dict:
    """The matched stage's figures of a job's output, the same dict from every warehouse.

    The match rate is the percentage of records that share their MatchID with at least one
    other record: the share of records the job resolved to a duplicate. `confidence`:
    `confidence_figures` of an ML_MATCHING output, None for a rule-based one.
    """
    rate = round(100.0 * counts.matched / counts.records, 2) if counts.records else 0.0
    return {
        "records": counts.records,
        "match_ids": counts.match_ids,
        "matched_records": counts.matched,
        "match_rate": rate,
        "rejected_rows": int(rejected_rows or 0),
        "confidence": confidence,
    }


def confidence_figures(header, row=None) -> dict:
    """ConfidenceLevel of the matched records (those sharing their MatchID) of an ML_MATCHING
    job's output, the same dict from every warehouse: how many carry one, how many fall below
    the threshold, values outside the documented 0.0-1.0 range, mean and minimum, and up to
    SAMPLE_IDS record ids below the threshold or without a value.

    `header`: the output's columns (none when it has no data file); `row`: (matched, with a
    value, below, out of range, mean, min, sample ids) as the warehouse counted them.
    `present` is False when the output has no ConfidenceLevel column (not an ML output)."""
    matched, with_confidence, below, out_of_range, mean, low, samples = row or (0, 0, 0, 0, None, None, [])
    return {
        "present": "ConfidenceLevel" in (header or ()),
        "matched_records": int(matched or 0),
        "with_confidence": int(with_confidence or 0),
        "below_threshold": int(below or 0),
        "out_of_range": int(out_of_range or 0),
        "mean": None if mean is None else round(float(mean), 4),
        "min": None if low is None else float(low),
        "sample_ids": [str(s) for s in samples or []],
    }


@dataclass(frozen=True)
class ExtractResult:
    """`fingerprint`: `slice_fingerprint` of the rows written, read in the same pass."""

    rows: int
    files: list[str]
    profile: dict = field(default_factory=dict)
    fingerprint: str = ""
    context_rows: int = 0  # known entities' records written beside the slice's for its job


@dataclass(frozen=True)
class IdentityFigures:
    """What applying a partition to the entity registry did (`registry.Registry.apply`): the
    load's identity checks and metadata read these."""

    records: int
    without_entity: int
    created: int  # entities created
    absorbed_records: int  # new records that joined a known entity
    merged: int  # entities merged into another
    split: int  # entities that lost records to another
    churn: int  # known records whose entity changed
    replayed: tuple[str, ...]  # later partitions replayed after this one
    oversized: tuple[tuple[str, int], ...]

    @property
    def churn_rate(self) -> float:
        """Known records moved, in percent of the partition's records."""
        return round(100.0 * self.churn / self.records, 2) if self.records else 0.0

    def metadata(self) -> dict:
        return {
            "entities_created": self.created,
            "records_absorbed": self.absorbed_records,
            "entities_merged": self.merged,
            "entities_split": self.split,
            "entity_churn": self.churn,
            "entity_churn_rate": self.churn_rate,
            "records_without_entity": self.without_entity,
            "replayed_partitions": list(self.replayed),
        }


@dataclass(frozen=True)
class LoadResult:
    """`figures`: `target_figures` of the staged match output; `replaced`: whether the
    partition's rows were swapped for it (only when the load's checks accepted them)."""

    rows: int
    table: str
    figures: dict
    replaced: bool
    identity: IdentityFigures | None = None


@contextmanager
def transaction(execute: Callable) -> Iterator[None]:
    """BEGIN, then COMMIT, or ROLLBACK on any exception (a cancelling signal's included);
    `execute` runs one statement on the connection."""
    execute("BEGIN")
    try:
        yield
        execute("COMMIT")
    except BaseException:
        execute("ROLLBACK")
        raise


def refuse_output(src_uri: str, table: str, partition_key: str, why: str):
    """The error for a match output the load will not use: it says the target is untouched."""
    from er_assets.errors import UpstreamRefused

    return UpstreamRefused(
        f"match output {src_uri} {why}; refused, partition {partition_key} of {table} left "
        "untouched. Re-run the matching stage (autosys-bridge run ... process)"
    )


class Warehouse(dg.ConfigurableResource):
    """What the stages ask of a warehouse."""

    def unload_extract(self, domain: Domain, start: dt.date, end: dt.date, dest_uri: str) -> ExtractResult:
        """Write the schema columns of source rows with start <= partition date < end to
        parquet under dest_uri (replacing what was there) and profile them for the DQ checks."""
        raise NotImplementedError

    def slice_fingerprint(self, domain: Domain, start: dt.date, end: dt.date) -> tuple[int, str]:
        """(rows, fingerprint) of the source slice `unload_extract` would write, computed in the
        warehouse: an order-independent sum of row hashes over the configured columns, so an
        unchanged slice can reuse its earlier extract (and that extract's matching job)."""
        raise NotImplementedError

    def load_matches(
        self,
        domain: Domain,
        partition_key: str,
        src_uri: str,
        accept: Callable[[dict], bool],
        extract_uri: str = "",
        run_id: str = "",
    ) -> LoadResult:
        """Validate, then swap: stage the match output CSV under src_uri in a staging table,
        measure the partition's own staged rows (`target_figures`; the context records of the
        extract at `extract_uri` are told apart), and in one transaction replace the
        partition's rows in the target with them and apply the job's groups to the entity
        registry (`registry.Registry.apply`, as run `run_id`); commit only when
        `accept({**figures, "identity": IdentityFigures})` is true, else roll back.

        An output that is missing, has no rows or cannot be read is refused (UpstreamRefused)
        before the target is touched; every output `accept` rejects leaves target and registry
        as they were."""
        raise NotImplementedError

    def match_output_figures(self, domain: Domain, output_uri: str, error_uri: str, extract_uri: str = "") -> dict:
        """`match_figures` of a job's output: the data files under output_uri (success/) and the
        rejected rows under error_uri, with `confidence_figures` for an ML_MATCHING domain
        (threshold dq.min_confidence.threshold), counted where the files are, never copied to
        this process in production. Only the partition's own records count: the context records
        of the extract at `extract_uri` are left out."""
        raise NotImplementedError

    def show_entity(self, domain: Domain, ident: str) -> dict:
        """`registry.Registry.show`: one entity by its id or a record's id ({} without a registry)."""
        raise NotImplementedError

    def rebuild_entities(self, domain: Domain, run_id: str) -> dict:
        """`registry.Registry.rebuild` in one transaction: the registry replayed from every loaded
        partition in order, the target's entity ids rewritten; what moved."""
        raise NotImplementedError

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        """Configured source columns that are missing or of a type that cannot be extracted as
        text (or, for the partition column, compared with dates): column -> problem. A missing
        table is reported under its own name."""
        raise NotImplementedError

    def check_ready(self, domain: Domain) -> list[str]:
        """Problems that would stop this domain's stages (missing tables, no access)."""
        raise NotImplementedError
