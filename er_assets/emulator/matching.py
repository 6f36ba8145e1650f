"""The matching engine of the local Entity Resolution emulator.

Rule-based workflows are executed here; ML_MATCHING workflows share the input, error and
output handling and take their match groups and ConfidenceLevel from `ml.py` instead.

`run_matching` reads a job's input (parquet or CSV: one file, a folder, or a glob), applies
a GetSchemaMapping / GetMatchingWorkflow pair exactly as those documents are shaped, and
writes the job folder the service writes under `<outputS3Path>/<workflowName>/<jobId>/`:

- `success/part-*.csv`: one row per processed record, with a header.
- `error/part-*.csv`: records the service rejects, only when there are some. AWS rejects a
  record whose unique id is null/empty, repeated, or longer than 38 characters (rule-based),
  and every record when a schema field uses a reserved name.

Output columns. AWS documents that it adds `MatchID` and `MatchRule` (rule-based) or
`ConfidenceLevel` (ML, where it takes the MatchRule's place here), and the
configured output attributes, and reserves `InputSourceARN`; it publishes no header, so the
order here is ours: InputSourceARN, RecordId (the unique id value), MatchID, MatchRule,
then every `outputSourceConfig[0].output` attribute under its own name (hashed ones as
SHA-256 hex; normalised values when the output's applyNormalization is true). Error rows
carry InputSourceARN, RecordId, ErrorMessage and the same attributes.

Semantics (AWS user guide, rule-based matching): a rule matches two records when all its
terms match; empty values never match unless `EmptyValues=Process`; records linked through
a chain of matches of one rule share a MatchID. Rules are a waterfall: records matched by a
rule are not offered to later rules. With `matchingConfig.enableTransitiveMatching`
(advanced rules only) every rule sees every record: a match group that contains records
already matched takes the match ID of the earliest rule level, records keep the ID they
first got, and unmatched members join it. Among several candidates of that level AWS takes
the smallest match ID; its IDs are opaque, so here the group with the smallest anchor (its
smallest unique id) wins. Every processed record gets a MatchID; a record no rule matched is
its own group with an empty MatchRule.

All record work happens in DuckDB SQL; connected components are numpy-vectorised.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from er_assets.emulator.components import connected_components
from er_assets.emulator.normalize import (
    bigrams,
    cosine_similarity,
    normalized,
    output_value,
    quote_ident,
    quote_literal,
    soundex,
)
from er_assets.emulator.rules import MatchingError, Plan, Term, build_plan

# "exceeds 38 characters (rule-based matching workflow only)" (user guide, Troubleshooting).
MAX_UNIQUE_ID_LENGTH = 38
# DuckDB's memory limit for a job: ER_MATCH_MEMORY_LIMIT (DuckDB's own syntax, e.g. `8GB`), else
# this share of the machine's memory (or of the container's cgroup limit, when lower). DuckDB
# spills to disk only beyond it; a fixed small limit made jobs past 1M records spill, and run
# superlinear. The share leaves room for the orchestrator and DuckDB's untracked allocations.
MEMORY_LIMIT_ENV = "ER_MATCH_MEMORY_LIMIT"
MEMORY_SHARE = 0.5
_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
PART_SIZE = "256MB"  # the service splits its output into several files; so do we
_SEP = "\x1f"  # joins a ONE_TO_ONE tag to its value; cannot occur in normalised text

Progress = Callable[[int], None]

__all__ = ["MatchingError", "run_matching"]


def run_matching(
    input_path: str | Path,
    schema: Mapping[str, Any],
    workflow: Mapping[str, Any],
    output_dir: str | Path,
    job_id: str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Run one matching job and write its output folder; return GetMatchingJob `metrics`.

    `output_dir` is the job folder itself (`.../<workflowName>/<jobId>`). `progress` is
    called a few times per job with the number of accepted records whose MatchID is final
    (what the service publishes as totalRecordsProcessed while a job runs).
    Raises MatchingError for an invalid schema/workflow or unreadable input.
    """
    plan = build_plan(schema, workflow)
    if plan.resolution_type == "ML_MATCHING":
        from er_assets.emulator import ml

        ml.require()
    report = progress or (lambda done: None)
    output_dir = Path(output_dir)
    for sub in ("success", "error"):
        shutil.rmtree(output_dir / sub, ignore_errors=True)
    (output_dir / "error").mkdir(parents=True, exist_ok=True)

    limit = memory_limit()
    spill = tempfile.mkdtemp(prefix=f"er-match-{job_id}-")
    con = duckdb.connect(config={"memory_limit": limit, "temp_directory": spill, "preserve_insertion_order": False})
    try:
        input_records = _load(con, plan, input_path)
        report(0)
        not_processed = _split_errors(con, plan, input_records, output_dir / "error")
        valid = _prepare(con, plan)
        if plan.resolution_type == "ML_MATCHING":
            root, confidence = ml.resolve(con, plan, valid)
            per_record = {"confidence": confidence}
            # Only records that matched another carry their group's confidence (NaN: none).
            metadata_sql = "CASE WHEN NOT isnan(g.confidence) THEN g.confidence END AS ConfidenceLevel"
        else:
            root, level = _resolve(con, plan, valid, report)
            per_record = {"level": level}
            metadata_sql = (
                "CASE g.level "
                + "".join(f"WHEN {i} THEN {quote_literal(rule.name)} " for i, rule in enumerate(plan.rules))
                + "END AS MatchRule"
            )
        match_ids = int(np.count_nonzero(root == np.arange(valid)))  # one anchor per group
        _write_success(con, plan, root, per_record, metadata_sql, output_dir / "success")
        report(valid)
    except duckdb.Error as exc:
        raise MatchingError(f"job {job_id}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return {
        "inputRecords": input_records,
        "totalRecordsProcessed": valid,
        "recordsNotProcessed": not_processed,
        "matchIDs": match_ids,
    }


def memory_limit(env: Mapping[str, str] = os.environ) -> str:
    """The DuckDB memory limit of a job (see MEMORY_LIMIT_ENV)."""
    configured = env.get(MEMORY_LIMIT_ENV, "").strip()
    if configured:
        if not _MEMORY_LIMIT.match(configured):
            raise MatchingError(f"{MEMORY_LIMIT_ENV}={configured!r}: expected a size such as 8GB or 512MB")
        return configured
    return f"{int(_machine_memory() * MEMORY_SHARE) // 2**20}MB"


def _machine_memory() -> int:
    """Physical memory in bytes, or the cgroup v2 limit of this process's container if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(cgroup)) if cgroup.isdigit() else total


# --- input ----------------------------------------------------------------------------------


def _input_files(input_path: str | Path) -> tuple[str, list[str]]:
    """The data files behind a file, folder (recursively, as a Glue table prefix) or glob."""
    path = Path(input_path)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".csv", ".parquet"))
    elif path.is_file():
        files = [str(path)]
    else:
        files = sorted(glob.glob(str(input_path), recursive=True))
    if not files:
        raise MatchingError(f"no input data at {input_path}")
    kinds = {Path(f).suffix.lower() for f in files}
    if len(kinds) != 1 or not kinds <= {".csv", ".parquet"}:
        raise MatchingError(f"input at {input_path} must be only .csv or only .parquet files, found {sorted(kinds)}")
    return kinds.pop(), files


def _load(con: duckdb.DuckDBPyConnection, plan: Plan, input_path: str | Path) -> int:
    """Relation `src`: the schema's fields as text, one row per input record."""
    kind, files = _input_files(input_path)
    file_list = "[" + ", ".join(quote_literal(f) for f in files) + "]"
    reader = (
        f"read_parquet({file_list}, union_by_name = true)"
        if kind == ".parquet"
        else f"read_csv({file_list}, header = true, all_varchar = true, union_by_name = true)"
    )
    columns = {name for (name,) in con.execute(f"SELECT column_name FROM (DESCRIBE SELECT * FROM {reader})").fetchall()}
    missing = [f.name for f in plan.fields if f.name not in columns]
    if missing:
        raise MatchingError(f"input at {input_path} lacks schema fields {missing}")
    select = ", ".join(f"CAST({quote_ident(f.name)} AS VARCHAR) AS {quote_ident(f.name)}" for f in plan.fields)
    # Parquet is cheap to scan twice (errors, then records); CSV is parsed once into a table.
    kind_of_relation = "VIEW" if kind == ".parquet" else "TABLE"
    con.execute(f"CREATE {kind_of_relation} src AS SELECT {select} FROM {reader}")
    return _count(con, "src")


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {relation}").fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return row[0]


# --- values ---------------------------------------------------------------------------------


def _field_index(plan: Plan) -> dict[str, int]:
    return {f.name: i for i, f in enumerate(plan.fields)}


def _needs_normalized(plan: Plan) -> list[int]:
    """Fields whose normalised value is used: slot members (when matching normalises) and
    outputs (when the output is normalised). Each is computed once, as column "#f<i>"."""
    index = _field_index(plan)
    used = set()
    if plan.apply_normalization:
        used |= {index[f.name] for slot in plan.slots for f in slot.fields}
    if plan.output_normalized:
        used |= {index[name] for name, _ in plan.outputs if plan.fields[index[name]].type != "UNIQUE_ID"}
    return sorted(used)


def _slot_sql(plan: Plan, slot_index: int) -> str:
    """The comparable value of a slot: its fields' values, a group's joined by a space."""
    index = _field_index(plan)
    slot = plan.slots[slot_index]
    if plan.apply_normalization:
        parts = [_normalized_ref(index[f.name]) for f in slot.fields]
    else:
        parts = [normalized(quote_ident(f.name), f.type, f.group is not None, False) for f in slot.fields]
    if len(parts) == 1:
        return parts[0]
    return f"NULLIF(concat_ws(' ', {', '.join(parts)}), '')"


def _output_sql(plan: Plan, name: str, hashed: bool, normalize: bool) -> str:
    """An output attribute: normalised if asked (never the unique id), SHA-256 hex if hashed."""
    i = _field_index(plan)[name]
    attr_type = plan.fields[i].type
    column = quote_ident(name)
    if normalize and attr_type != "UNIQUE_ID":
        column = output_value(_normalized_ref(i), attr_type, plan.fields[i].group is not None)
    return f"sha256({column})" if hashed else column


def _normalized_ref(field_index: int) -> str:
    # AWS attribute names cannot contain '#', so these never collide with input columns.
    return f'"#f{field_index}"'


def _normalized_columns(plan: Plan) -> str:
    return "".join(f", {_normalized_sql(plan.fields[i])} AS {_normalized_ref(i)}" for i in _needs_normalized(plan))


def _normalized_sql(field) -> str:
    return normalized("src." + quote_ident(field.name), field.type, field.group is not None, True)


def _copy_csv(con: duckdb.DuckDBPyConnection, query: str, folder: Path) -> None:
    con.execute(
        f"COPY ({query}) TO {quote_literal(str(folder))} "
        f"(FORMAT csv, HEADER true, FILENAME_PATTERN 'part-{{i}}', FILE_SIZE_BYTES '{PART_SIZE}', OVERWRITE true)"
    )


def _split_errors(con: duckdb.DuckDBPyConnection, plan: Plan, input_records: int, folder: Path) -> int:
    """Number the records the service accepts (table `ids`); write the others to error/.

    `ids` holds only unique ids, numbered 0..n-1 in id order: sorting this narrow table is
    cheap, and numbering by id makes every "smallest record" choice (group anchors, hence
    MatchIDs) independent of input file order.
    """
    uid = quote_ident(plan.unique_id)
    rule_based = plan.resolution_type == "RULE_MATCHING"
    length_ok = f" AND length({uid}) <= {MAX_UNIQUE_ID_LENGTH}" if rule_based else ""
    valid = "FALSE" if plan.reserved_field else f"{uid} IS NOT NULL AND trim({uid}) <> ''{length_ok}"
    con.execute(
        f"CREATE TABLE ids AS SELECT {uid} AS uid, (row_number() OVER (ORDER BY {uid}) - 1)::BIGINT AS rid "
        f"FROM src WHERE {valid} GROUP BY {uid} HAVING count(*) = 1"
    )
    accepted = _count(con, "ids")
    rejected = input_records - accepted
    if rejected:
        reason = (
            quote_literal(f"Schema field name {plan.reserved_field} is reserved")
            if plan.reserved_field
            else (
                f"CASE WHEN {uid} IS NULL OR trim({uid}) = '' THEN 'Unique ID is missing' "
                + (
                    f"WHEN length({uid}) > {MAX_UNIQUE_ID_LENGTH} "
                    f"THEN 'Unique ID exceeds {MAX_UNIQUE_ID_LENGTH} characters' "
                    if rule_based
                    else ""
                )
                + "ELSE 'Unique ID is not unique' END"
            )
        )
        # Rejected records are written as read (nothing was normalised), hashed where asked.
        outputs = "".join(
            f", {_output_sql(plan, name, hashed, normalize=False)} AS {quote_ident(name)}"
            for name, hashed in plan.outputs
        )
        _copy_csv(
            con,
            f"SELECT {quote_literal(plan.input_source_arn)} AS InputSourceARN, {uid} AS RecordId, "
            f"{reason} AS ErrorMessage{outputs} FROM src WHERE {uid} NOT IN (SELECT uid FROM ids) OR {uid} IS NULL",
            folder,
        )
    return rejected


def _prepare(con: duckdb.DuckDBPyConnection, plan: Plan) -> int:
    """Table `rec`: accepted records with rid, uid, slot values k<i> and outputs o<j>."""
    uid = quote_ident(plan.unique_id)
    slots = "".join(f", {_slot_sql(plan, i)} AS k{i}" for i in range(len(plan.slots)))
    outputs = "".join(
        f", {_output_sql(plan, name, hashed, plan.output_normalized)} AS o{j}"
        for j, (name, hashed) in enumerate(plan.outputs)
    )
    soundex_slots = sorted({_slot_index(plan, t) for t in _terms(plan) if t.function == "Soundex"})
    phonetic = "".join(f", {soundex(f'k{i}')} AS sx{i}" for i in soundex_slots)
    con.execute(
        f"CREATE TABLE rec AS SELECT *{phonetic} FROM ("
        f'SELECT "#rid" AS rid, "#uid" AS uid{slots}{outputs} FROM ('
        f'SELECT ids.rid AS "#rid", ids.uid AS "#uid", src.*{_normalized_columns(plan)} '
        f"FROM src JOIN ids ON ids.uid = src.{uid}))"
    )
    return _count(con, "rec")


def _terms(plan: Plan) -> list[Term]:
    return [t for rule in plan.rules for conj in rule.conjunctions for t in conj]


def _slot_index(plan: Plan, term: Term) -> int:
    return next(i for i, s in enumerate(plan.slots) if s.name == term.slots[0][1])


# --- matching -------------------------------------------------------------------------------


def _token_sql(plan: Plan, term: Term) -> tuple[str, bool]:
    """SQL for the blocking token(s) of an exact term; (expression, is_list)."""
    index = {s.name: i for i, s in enumerate(plan.slots)}

    def alternative(tag: str, slot: str) -> str:
        value = f"rec.k{index[slot]}"
        if term.empty == "Process":
            value = f"coalesce({value}, '')"
        return f"({quote_literal(tag + _SEP)} || {value})" if tag else value

    if len(term.slots) == 1:  # one value per record: a tag could not tell anything apart
        return alternative("", term.slots[0][1]), False
    alternatives = [alternative(tag, slot) for tag, slot in term.slots]
    return f"list_distinct(list_filter([{', '.join(alternatives)}], lambda x: x IS NOT NULL))", True


def _filter_sql(plan: Plan, term: Term) -> str:
    """Predicate on a candidate pair (a, b) for a fuzzy or EmptyValues=Ignore term."""
    i = _slot_index(plan, term)
    a, b = f"a.k{i}", f"b.k{i}"
    if term.empty == "Process":
        a, b = f"coalesce({a}, '')", f"coalesce({b}, '')"
    if term.function == "Exact":
        test = f"{a} = {b}"
    elif term.function == "Levenshtein":
        test = f"levenshtein({a}, {b}) <= {term.threshold}"
    elif term.function == "Soundex":
        sa, sb = f"a.sx{i}", f"b.sx{i}"
        test = f"coalesce({sa}, '') = coalesce({sb}, '')" if term.empty == "Process" else f"{sa} = {sb}"
    else:  # Cosine, threshold in percent
        test = f"{cosine_similarity(bigrams(a), bigrams(b))} * 100 >= {term.threshold}"
    if term.empty == "Ignore":
        return f"(a.k{i} IS NULL OR b.k{i} IS NULL OR {test})"
    if term.empty == "Process":
        return f"({test})"
    return f"(a.k{i} IS NOT NULL AND b.k{i} IS NOT NULL AND {test})"


def _edges(con: duckdb.DuckDBPyConnection, plan: Plan, conjunction: tuple[Term, ...], active: str) -> np.ndarray:
    """Record pairs (2 x m array) that one conjunction links among the active records.

    Exact terms give blocks; without fuzzy terms, linking every member of a block to its
    smallest member is enough for connected components, so no pairs are materialised.
    """
    blocking = [t for t in conjunction if t.blocking]
    filters = [t for t in conjunction if not t.blocking]
    selects, lateral, conditions = [], "", [active]
    for n, term in enumerate(blocking):
        sql, is_list = _token_sql(plan, term)
        if is_list:
            lateral += f", unnest({sql}) AS u{n}(t{n})"
            selects.append(f"u{n}.t{n}")
        else:
            selects.append(f"{sql} AS t{n}")
            conditions.append(f"{sql} IS NOT NULL")
    tokens = f"SELECT rec.rid, {', '.join(selects)} FROM rec{lateral} WHERE {' AND '.join(conditions)}"
    keys = [f"t{n}" for n in range(len(blocking))]
    if not filters:
        query = (
            f"SELECT rid, root FROM (SELECT rid, min(rid) OVER (PARTITION BY {', '.join(keys)}) AS root "
            f"FROM ({tokens})) WHERE rid <> root"
        )
    else:
        same_block = " AND ".join(f"x.{k} = y.{k}" for k in keys)
        predicate = " AND ".join(_filter_sql(plan, t) for t in filters)
        query = (
            f"WITH tok AS ({tokens}), "
            f"pairs AS (SELECT DISTINCT x.rid AS u, y.rid AS v FROM tok x JOIN tok y "
            f"ON {same_block} AND x.rid < y.rid) "
            f"SELECT pairs.u, pairs.v FROM pairs JOIN rec a ON a.rid = pairs.u JOIN rec b ON b.rid = pairs.v "
            f"WHERE {predicate}"
        )
    result = con.execute(query).fetchnumpy()
    columns = list(result.values())
    return np.vstack([np.asarray(columns[0], dtype=np.int64), np.asarray(columns[1], dtype=np.int64)])


def _resolve(con: duckdb.DuckDBPyConnection, plan: Plan, n: int, report: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Each record's group anchor (smallest record of its match group) and rule level (-1: none)."""
    root = np.full(n, -1, dtype=np.int64)
    level = np.full(n, -1, dtype=np.int64)
    for r, rule in enumerate(plan.rules):
        if plan.transitive or r == 0:
            active = "TRUE"
        else:
            con.register("_free", {"rid": np.flatnonzero(root < 0)})
            active = "rec.rid IN (SELECT rid FROM _free)"
        edges = np.hstack([_edges(con, plan, conj, active) for conj in rule.conjunctions])
        if edges.size:
            label = connected_components(n, edges[0], edges[1])
            members = _members(n, edges)
            if plan.transitive:
                _join_earlier_groups(root, level, label, members, r, n)
            else:
                root[members] = label[members]
                level[members] = r
        report(int((root >= 0).sum()))
    singles = root < 0
    root[singles] = np.flatnonzero(singles)
    return root, level


def _members(n: int, edges: np.ndarray) -> np.ndarray:
    """Records on at least one edge, ascending (a mask is O(n); np.unique would sort)."""
    mask = np.zeros(n, dtype=bool)
    mask[edges.ravel()] = True
    return np.flatnonzero(mask)


def _join_earlier_groups(
    root: np.ndarray, level: np.ndarray, label: np.ndarray, members: np.ndarray, r: int, n: int
) -> None:
    """Transitive matching: a group of rule r inherits the earliest, smallest existing ID."""
    done = root[members] >= 0
    earlier = members[done]
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, label[earlier], level[earlier] * n + root[earlier])
    fresh = members[~done]
    inherited = best[label[fresh]]
    has_earlier = inherited != np.iinfo(np.int64).max
    root[fresh] = np.where(has_earlier, inherited % n, label[fresh])
    level[fresh] = r


def _write_success(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    root: np.ndarray,
    per_record: dict[str, np.ndarray],
    metadata_sql: str,
    folder: Path,
) -> None:
    """success/: every accepted record with its MatchID, the technique's own metadata column
    (`metadata_sql` over `_groups` g, which holds the `per_record` arrays) and the outputs."""
    # A dict of numpy arrays scans without pyarrow, whose first use costs ~0.2 s.
    con.register("_groups", {"rid": np.arange(root.size), "root": root, **per_record})
    outputs = "".join(f", r.o{j} AS {quote_ident(name)}" for j, (name, _) in enumerate(plan.outputs))
    # A MatchID is stable for the same group of the same workflow: it hashes the workflow
    # name and the group's smallest unique id (32 hex characters, like the service's).
    _copy_csv(
        con,
        f"SELECT {quote_literal(plan.input_source_arn)} AS InputSourceARN, r.uid AS RecordId, "
        f"md5({quote_literal(plan.workflow_name + ':')} || anchor.uid) AS MatchID, {metadata_sql}"
        f"{outputs} FROM rec r JOIN _groups g ON g.rid = r.rid JOIN ids anchor ON anchor.rid = g.root",
        folder,
    )
