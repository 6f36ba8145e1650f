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
# Blank means blank in every script: a value of only these characters counts as empty in
# required_fields and unique_ids. Every Unicode white-space character (tab, newline, no-break
# space, ideographic space...) and the invisible format characters pasted with ids: zero-width
# space, non-joiner and joiner, word joiner, byte-order mark, soft hyphen, Mongolian vowel
# separator.
BLANK_CHARACTERS = "".join(sorted(
    {c for c in map(chr, range(0x3001)) if c.isspace()} | set("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")))


def blank_sql(text: str) -> str:
    """SQL that is true when `text` is NULL or only blank characters, in DuckDB and Snowflake
    alike: TRANSLATE deletes the characters its target has no counterpart for (both engines
    document it so), and CHR spells them without control characters in the statement."""
    others = [c for c in BLANK_CHARACTERS if c != " "]
    alphabet = " || ".join(f"CHR({ord(c)})" for c in [" ", *others])
    return f"({text} IS NULL OR TRIM(TRANSLATE({text}, {alphabet}, ' ')) = '')"


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


def assemble_profile(domain: Domain, counts, samples) -> dict:
    """The extract profile, the same dict from every warehouse.

    `counts`: rows, empty ids, duplicate ids, long ids, each required field's empty values,
    then per format field its non-empty values and those not of the expected shape, then
    each schema column's non-empty values (`non_empty_counts`).
    `samples`: (label, record id) rows, labels as `sample_labels` names them; at most
    SAMPLE_IDS per label, so this loops over a handful of ids, never over records.
    """
    rows, empty_ids, duplicate_ids, long_ids, *rest = (int(v or 0) for v in counts)
    required = domain.dq.required_fields
    null_counts, rest = dict(zip(required, rest[: len(required)])), rest[len(required):]
    rest, non_empty = rest[: 2 * len(domain.format_fields)], rest[2 * len(domain.format_fields):]
    by_label: dict[str, list[str]] = {label: [] for label in sample_labels(domain)}
    for label, record_id in samples:
        by_label[label].append(str(record_id))
    return {
        "rows": rows,
        "empty_ids": empty_ids,
        "duplicate_ids": duplicate_ids,
        "long_ids": long_ids,
        "null_counts": null_counts,
        "non_empty": dict(zip(domain.schema.columns, non_empty)),
        "formats": {
            name: {"type": attr_type, "values": rest[2 * i], "invalid": rest[2 * i + 1],
                   "sample_ids": by_label[f"format:{name}"]}
            for i, (name, attr_type, _) in enumerate(domain.format_fields)
        },
        "sample_ids": {
            "duplicate_ids": by_label["duplicate_ids"],
            "long_ids": by_label["long_ids"],
            "required_fields": {f: by_label[f"null:{f}"] for f in required},
        },
    }


def non_empty_counts(domain: Domain, text) -> list[str]:
    """Per schema column, the SQL counting its non-empty values (`text(column)` reads it as
    text): the extract and the target are counted alike, so a value lost on the way shows."""
    return [f"COUNT_IF(NOT {blank_sql(text(column))})" for column in domain.schema.columns]


def target_figures(counts, samples) -> dict:
    """Rows, duplicate record ids and rows without a MatchID of a partition in the target, with
    sample ids; `samples` are (label, record id) rows, labels duplicate_ids and missing_match_ids."""
    rows, duplicates, missing = (int(v or 0) for v in counts)
    by_label: dict[str, list[str]] = {"duplicate_ids": [], "missing_match_ids": []}
    for label, record_id in samples:
        by_label[label].append(str(record_id))
    return {"rows": rows, "duplicate_ids": duplicates, "missing_match_ids": missing, "sample_ids": by_label}



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
        """`target_figures` of the partition in the target table."""
        raise NotImplementedError

    def field_counts(self, domain: Domain, partition_key: str) -> dict[str, int]:
        """Non-empty values per schema column of the partition in the target table, counted
        as the extract profile counts them (`non_empty_counts`); zeros without a table."""
        raise NotImplementedError

    def source_schema_problems(self, domain: Domain) -> dict[str, str]:
        """Configured source columns that are missing or of a type that cannot be extracted as
        text (or, for the partition column, compared with dates): column -> problem. A missing
        table is reported under its own name."""
        raise NotImplementedError

    def check_ready(self, domain: Domain) -> list[str]:
        """Problems that would stop this domain's stages (missing tables, no access)."""
        raise NotImplementedError
