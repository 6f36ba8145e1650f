"""The warehouses' measuring queries, each written once and rendered for a `Dialect`.

The extract profile, the slice fingerprint, the figures of staged (or loaded) match rows and
the matched stage's counts of a job's output are the same SQL in DuckDB (the local
warehouse) and in Snowflake, apart from the few fragments a Dialect names: identifier
quoting, the cast to text, the whole-value regular-expression match, the bound-parameter
style and the ordered array aggregate. The rest (COUNT_IF, TRANSLATE, CHR, TRIM, LENGTH,
HASH, CASE, CTEs, a UNION ALL of limited subqueries) both engines document alike.
er_assets_tests/resources/warehouses/test_queries.py runs every query on DuckDB and on fakesnow and
compares the figures.

Every query reads a relation the caller gives as a SELECT (`rows`, `records`): where the rows
are is the warehouse's business (a DuckDB view or CSV files, a Snowflake table or stage).
Identifiers come from the configuration through `Dialect.ident`; values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from er_assets.config import Domain
from er_assets.resources.warehouses.base import MAX_UNIQUE_ID_LENGTH, SAMPLE_IDS, sample_labels

# Blank means blank in every script: a value of only these characters counts as empty in
# required_fields and unique_ids. Every Unicode white-space character (tab, newline, no-break
# space, ideographic space...) and the invisible format characters pasted with ids: zero-width
# space, non-joiner and joiner, word joiner, byte-order mark, soft hyphen, Mongolian vowel
# separator.
BLANK_CHARACTERS = "".join(
    sorted({c for c in map(chr, range(0x3001)) if c.isspace()} | set("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
)


@dataclass(frozen=True)
class Dialect:
    """What differs between the warehouses' SQL. `text`, `param`: format strings, `{}` the
    expression or the parameter's name; `full_match`: a function of (value, pattern) true when
    the whole value matches; `ordered_array`: an aggregate of the column `id`, ordered by it;
    `strip`: a format string deleting ASCII white space and punctuation from `{}` everywhere in
    it (DuckDB's regexp_replace needs the 'g' flag, Snowflake's replaces every occurrence);
    `hash`: a 64-bit hash of `{}` as a BIGINT (each engine's own function: compared only within
    one warehouse)."""

    ident: Callable[[str], str]
    text: str
    full_match: str
    param: str
    ordered_array: str
    strip: str
    hash: str

    def column_text(self, column: str) -> str:
        return self.text.format(self.ident(column))


def blank_sql(text: str) -> str:
    """SQL that is true when `text` is NULL or only blank characters, in DuckDB and Snowflake
    alike: TRANSLATE deletes the characters its target has no counterpart for (both engines
    document it so), and CHR spells them without control characters in the statement."""
    others = [c for c in BLANK_CHARACTERS if c != " "]
    alphabet = " || ".join(f"CHR({ord(c)})" for c in [" ", *others])
    return f"({text} IS NULL OR TRIM(TRANSLATE({text}, {alphabet}, ' ')) = '')"


def _counts(counts: dict[str, str], rows: str) -> str:
    """One row: each count of `counts` (name -> SQL) over `rows`, named as its key, quoted so
    both engines keep the name as written. The reader takes them by name (`base.named_row`),
    never by position."""
    return f"SELECT {', '.join(f'{sql} AS {quote(name)}' for name, sql in counts.items())} FROM ({rows})"


def quote(identifier: str) -> str:
    """Any name as a quoted identifier, kept as written (DuckDB's identifiers, result labels)."""
    return '"' + identifier.replace('"', '""') + '"'


def _samples(rows: str, record_id: str, branches: dict[str, str]) -> str:
    """(label, record id) rows: per label at most SAMPLE_IDS ids, the lowest, of the rows its
    branch (`WHERE ...` and/or `GROUP BY ...`) keeps."""
    return f"WITH sampled AS ({rows}) " + " UNION ALL ".join(
        f"SELECT * FROM (SELECT '{label}' AS label, {record_id} AS id FROM sampled {branch} "
        f"ORDER BY 2 LIMIT {SAMPLE_IDS})"
        for label, branch in branches.items()
    )


def non_empty_counts(dialect: Dialect, domain: Domain, columns: list[str] | None = None) -> dict[str, str]:
    """Per schema column (or per one of `columns`), the SQL counting its non-empty values,
    named `non_empty:<column>`: the extract and the match output are counted alike, so a value
    lost on the way shows."""
    return {
        f"non_empty:{c}": f"COUNT_IF(NOT {blank_sql(dialect.column_text(c))})" for c in columns or domain.schema.columns
    }


# --- the catalogue --------------------------------------------------------------------------


def table_exists_sql(dialect: Dialect) -> str:
    """1 when the table bound as `name` (as the catalogue spells it) is in the current schema."""
    return (
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema = CURRENT_SCHEMA() AND table_name = {dialect.param.format('name')}"
    )


def columns_sql(dialect: Dialect) -> str:
    """(upper-case name, type) of each column of the table bound as `name`, in the current schema."""
    return (
        "SELECT UPPER(column_name), data_type FROM information_schema.columns "
        f"WHERE table_schema = CURRENT_SCHEMA() AND table_name = {dialect.param.format('name')}"
    )


# --- the extract's slice ---------------------------------------------------------------------


def format_params(domain: Domain) -> dict[str, str]:
    """The format patterns the profile binds, `fmt<i>` in `domain.format_fields` order."""
    return {f"fmt{i}": pattern for i, (_, _, pattern) in enumerate(domain.format_fields)}


def _problems(dialect: Dialect, domain: Domain) -> dict[str, str]:
    """The condition a record meets when it has each sampled problem (see `sample_labels`)."""
    uid = dialect.column_text(domain.schema.unique_id)
    problems = {"long_ids": f"LENGTH({uid}) > {MAX_UNIQUE_ID_LENGTH}"}
    problems.update({f"null:{f}": blank_sql(dialect.column_text(f)) for f in domain.dq.required_fields})
    for i, (name, _, _) in enumerate(domain.format_fields):
        value = dialect.column_text(name)
        pattern = dialect.param.format(f"fmt{i}")
        problems[f"format:{name}"] = f"NOT {blank_sql(value)} AND NOT {dialect.full_match}(TRIM({value}), {pattern})"
    return problems


def profile_sql(dialect: Dialect, domain: Domain, rows: str) -> str:
    """One pass over the slice `rows` counting what the extract checks judge, each count named
    as `assemble_profile` reads it; the patterns bound as `format_params`."""
    uid = dialect.column_text(domain.schema.unique_id)
    problems = _problems(dialect, domain)
    counts = {
        "rows": "COUNT(*)",
        "empty_ids": f"COUNT_IF({blank_sql(uid)})",
        "duplicate_ids": f"COUNT(*) - COUNT(DISTINCT {uid})",
        "long_ids": f"COUNT_IF({problems['long_ids']})",
    }
    counts.update({f"null:{f}": f"COUNT_IF({problems[f'null:{f}']})" for f in domain.dq.required_fields})
    for name, _, _ in domain.format_fields:
        counts[f"values:{name}"] = f"COUNT_IF(NOT {blank_sql(dialect.column_text(name))})"
        counts[f"format:{name}"] = f"COUNT_IF({problems[f'format:{name}']})"
    return _counts({**counts, **non_empty_counts(dialect, domain)}, rows)


def profile_samples_sql(dialect: Dialect, domain: Domain, rows: str) -> str:
    """A few record ids per problem of the slice `rows`, as (label, id) rows."""
    uid = dialect.column_text(domain.schema.unique_id)
    problems = _problems(dialect, domain)
    branches = {"duplicate_ids": f"WHERE {uid} IS NOT NULL GROUP BY {uid} HAVING COUNT(*) > 1"}
    branches.update(
        {
            label: f"WHERE ({problems[label]}) AND NOT {blank_sql(uid)}"
            for label in sample_labels(domain)
            if label != "duplicate_ids"
        }
    )
    return _samples(rows, uid, branches)


def fingerprint_sql(dialect: Dialect, domain: Domain, rows: str) -> str:
    """Rows and an order-independent content fingerprint (as text) of the slice `rows`: the sum
    of the rows' hashes, exact (DuckDB's HUGEINT, Snowflake's NUMBER(38)) for any slice size.
    Each engine has its own HASH, so a fingerprint is only ever compared within one warehouse.
    (Snowflake's HASH_AGG would do the same there, but fakesnow lacks it.)"""
    texts = ", ".join(dialect.column_text(c) for c in domain.schema.columns)
    return f"SELECT COUNT(*), {dialect.text.format(f'COALESCE(SUM(HASH({texts})), 0)')} FROM ({rows})"


# --- match rows, staged or in the target -----------------------------------------------------


def figures_sql(dialect: Dialect, domain: Domain, rows: str) -> str:
    """Counts of `target_figures` over `rows`; a blank MatchID is none, as the matched stage
    counts it (`output_counts_sql`)."""
    uid, match_id = dialect.ident(domain.schema.unique_id), dialect.ident("MatchID")
    return (
        f"SELECT COUNT(*), COUNT(*) - COUNT(DISTINCT {uid}), COUNT_IF({blank_sql(match_id)}), "
        f"COUNT(DISTINCT CASE WHEN NOT {blank_sql(match_id)} THEN {match_id} END) FROM ({rows})"
    )


def figures_samples_sql(dialect: Dialect, domain: Domain, rows: str) -> str:
    uid = dialect.ident(domain.schema.unique_id)
    return _samples(
        rows,
        uid,
        {
            "duplicate_ids": f"GROUP BY {uid} HAVING COUNT(*) > 1",
            "missing_match_ids": f"WHERE {blank_sql(dialect.ident('MatchID'))}",
        },
    )


def non_empty_sql(dialect: Dialect, domain: Domain, rows: str, columns: list[str]) -> str:
    """Non-empty values per one of `columns` (schema columns `rows` has), counted as
    `profile_sql` counts them in the extract."""
    return _counts(non_empty_counts(dialect, domain, columns), rows)


# --- a job's output, where the service wrote it -----------------------------------------------


def output_counts_sql(records: str, own: str = "TRUE") -> str:
    """Records, MatchIDs and records sharing their MatchID with another, named as
    `base.OutputCounts` reads them; `records` selects the output's rows with their MatchID as `m`. A blank MatchID
    is none, as in the load's figures. Only the partition's own records count (`own`, an
    expression over a row of `records`: false for the context records of known entities the
    extract added), but sharing a MatchID with a context record is a match: the record joined a
    known entity."""
    return (
        f"WITH output_rows AS (SELECT m, {own} AS own FROM ({records})), "
        "sizes AS (SELECT m, COUNT(*) AS n, COUNT_IF(own) AS own FROM output_rows GROUP BY m), "
        f"assigned AS (SELECT n, own, NOT {blank_sql('m')} AS assigned FROM sizes) "
        'SELECT COALESCE(SUM(own), 0) AS "records", COUNT_IF(assigned AND own > 0) AS "match_ids", '
        'COALESCE(SUM(CASE WHEN assigned AND n > 1 THEN own ELSE 0 END), 0) AS "matched" FROM assigned'
    )


def output_confidence_sql(dialect: Dialect, records: str, own: str = "TRUE") -> str:
    """`confidence_figures` counts of the matched records (those sharing their MatchID) of an
    ML_MATCHING output; `records` selects its rows as (`id`, `m` the MatchID, `c` the
    ConfidenceLevel as a number, NULL when none), the threshold is bound as `threshold`. The
    sample ids are picked by a LIMIT before they are aggregated, so the array stays SAMPLE_IDS
    long however many records fall below the threshold. Only the partition's own records
    count (`own`, as in `output_counts_sql`); a group shared with context records is a match."""
    low = f"c < {dialect.param.format('threshold')}"
    only_own = "" if own == "TRUE" else f" AND {own}"
    return (
        f"WITH output_rows AS ({records}), "
        f"matched AS (SELECT * FROM output_rows WHERE NOT {blank_sql('m')}{only_own} "
        "AND m IN (SELECT m FROM output_rows GROUP BY m HAVING COUNT(*) > 1)), "
        f"samples AS (SELECT id FROM matched WHERE {low} OR c IS NULL ORDER BY id LIMIT {SAMPLE_IDS}) "
        f"SELECT COUNT(*), COUNT(c), COUNT_IF({low}), COUNT_IF(c < 0 OR c > 1), AVG(c), MIN(c), "
        f"(SELECT {dialect.ordered_array} FROM samples) FROM matched"
    )
