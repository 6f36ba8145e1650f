"""ML_MATCHING for the local emulator: a Fellegi–Sunter model fitted to each job's input.

AWS does not publish its matching model, so this is a stand-in that behaves like one: it
is probabilistic, needs no labels and no rules, and produces the documented output.

What AWS documents (user guide, "Creating a machine learning-based matching workflow",
"How AWS Entity Resolution works" and the glossary):
- the model uses the input fields of the name, email address, phone number, address and
  date of birth types; a field without a matchKey "can't be used in matching";
- normalisation (when asked) applies to names, phones and emails only;
- every record gets a MatchID; a record that matches others also gets the group's
  `ConfidenceLevel`, "a confidence score of 0.0–1.0, which indicates the precision of the
  match" (the ML page calls it a percentage; the 0.0–1.0 range is the one given in figures);
- no MatchRule (that is rule-based metadata).

The model (Splink on DuckDB, https://moj-analytical-services.github.io/splink/):
- features: each compared value lowercased, punctuation removed, spaces collapsed (_feature_sql);
- one comparison per schema field that has a matchKey (identifiers such as STRING ids too,
  which AWS does not say it uses), chosen by attribute type (names:
  Jaro-Winkler levels; emails: Splink's email comparison; phones, dates and ids: edit
  distance on their digits/characters; street lines: Jaro-Winkler; postcodes: edit distance 1;
  city/state/country: exact or near);
- blocking rules derived from the data: each field whose exact-equality blocks yield at most
  BLOCK_PAIRS_PER_RECORD candidate pairs per record, then pairs of the fields that are too
  common alone (first + last name, postcode + street...), so a job stays near-linear; a
  job where nothing narrows the pairs that far is refused with a message saying so;
- parameters estimated without labels: the prior (probability that two random records
  match) from near-certain pairs (see _prior); u by random sampling of record pairs (fixed
  seed); m by expectation maximisation, blocked on the most selective rules until every
  comparison has been estimated;
- pairs with match probability >= MATCH_PROBABILITY are linked, and linked records form
  a match group (connected components, as rule-based groups are formed);
- ConfidenceLevel of a group: the smallest, over its records, of each record's best match
  probability with another record of the group (every record of the group matches one of
  the others at least that well), rounded to 4 decimals.

The same input gives the same output, whatever the order of its files: records are numbered
by unique id, sampling is seeded, and training runs on one DuckDB thread (see _predict).
Splink is an optional dependency (`pip install 'er-pipelines[ml]'`); without it an
ML_MATCHING job fails with one line saying so.
"""

from __future__ import annotations

import importlib.util
import logging
from itertools import combinations

import duckdb
import numpy as np

from er_assets.emulator.components import connected_components
from er_assets.emulator.normalize import quote_ident
from er_assets.emulator.rules import InputField, MatchingError, Plan

INSTALL_HINT = "pip install 'er-pipelines[ml]'"
MATCH_PROBABILITY = 0.5  # a pair is a match when the model finds it more likely than not
BLOCK_PAIRS_PER_RECORD = 5  # candidate pairs a blocking rule may generate, per input record
MIN_BLOCK_PAIRS = 10_000  # ... and at least this many, so small jobs are compared thoroughly
MAX_BLOCKING_RULES = 8
U_SAMPLE_PAIRS = 1e6  # random pairs for estimating u (Splink suggests 1e7+; 1e6 kept FEBRL F1 > 0.99)
EM_MAX_PAIRS = 1e6  # blocked pairs per EM session (hash-sampled beyond that)
MAX_EM_SESSIONS = 3
SEED = 42
# Share of the true matches that the deterministic rules find, for the prior (Splink's own
# examples assume 0.7 for rules of this kind; the prior only shifts match weights a little).
DETERMINISTIC_RECALL = 0.7


def require() -> None:
    """Refuse early, in one line, when the optional model library is not installed."""
    if importlib.util.find_spec("splink") is None:
        raise MatchingError(f"resolutionType ML_MATCHING needs the optional dependency splink: {INSTALL_HINT}")


def compared_fields(plan: Plan) -> list[InputField]:
    """The schema fields the model compares: every field with a matchKey but the unique id."""
    fields = [f for f in plan.fields if f.match_key and f.type != "UNIQUE_ID"]
    if not fields:
        raise MatchingError(
            "ML_MATCHING: no schema field has a matchKey (besides the UNIQUE_ID); the model has nothing to compare"
        )
    return fields


def _feature_sql(field: InputField) -> str:
    """The value the model compares for one field (NULL when empty).

    These are the model's own features, whatever applyNormalization says (normalisation
    shapes what the output shows, matching.py): case, punctuation, symbols and runs of
    spaces never tell two names, addresses or ids apart; letters and digits of every script
    are kept.
    Phones and dates compare their digits (1956-04-09 = 19560409), emails lowercased.
    """
    column = f"src.{quote_ident(field.name)}"
    if field.type == "DATE" or field.type.startswith("PHONE"):
        return f"NULLIF(regexp_replace({column}, '[^\\p{{Nd}}]', '', 'g'), '')"
    if field.type == "EMAIL_ADDRESS":
        return f"NULLIF(lower(trim({column})), '')"
    cleaned = f"regexp_replace(lower({column}), '[\\pP\\pS]', '', 'g')"
    return f"NULLIF(trim(regexp_replace({cleaned}, '\\s+', ' ', 'g')), '')"


def _comparison(column: str, attr_type: str):
    import splink.comparison_library as cl

    if attr_type.startswith("NAME"):
        return cl.NameComparison(column)
    if attr_type == "EMAIL_ADDRESS":
        return cl.EmailComparison(column)
    if attr_type == "ADDRESS_POSTALCODE":
        return cl.LevenshteinAtThresholds(column, [1])
    if attr_type in ("ADDRESS_CITY", "ADDRESS_STATE", "ADDRESS_COUNTRY"):
        return cl.JaroWinklerAtThresholds(column, [0.9])
    if attr_type.startswith("ADDRESS"):
        return cl.JaroWinklerAtThresholds(column, [0.9, 0.8])
    # Phones, dates and identifiers (STRING, PROVIDER_ID, MAID, IPs): typos are edits.
    return cl.LevenshteinAtThresholds(column, [1, 2])


def _pairs(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...]) -> int:
    """Candidate pairs that exact equality on all `columns` generates (empty never blocks)."""
    keys = ", ".join(columns)
    present = " AND ".join(f"{c} IS NOT NULL" for c in columns)
    row = con.execute(
        f"SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM (SELECT count(*) AS n FROM mlrec WHERE {present} "
        f"GROUP BY {keys})"
    ).fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return int(row[0])


def blocking_rules(
    con: duckdb.DuckDBPyConnection, columns: list[str], records: int
) -> list[tuple[tuple[str, ...], int]]:
    """(columns, candidate pairs) of the blocking rules, most selective first.

    Single fields that stay within the budget, then pairs of the fields too common alone.
    No rule at all when no two records share any value (nothing can match). A job whose
    fields are all too common even in pairs (say, only city and state) is refused: scoring
    every pair of it would not finish.
    """
    budget = max(BLOCK_PAIRS_PER_RECORD * records, MIN_BLOCK_PAIRS)
    costs: dict[tuple[str, ...], int] = {(c,): _pairs(con, (c,)) for c in columns}
    common = [c for c in columns if costs[(c,)] > budget]
    for pair in combinations(common, 2):
        costs[pair] = _pairs(con, pair)
    fitting = sorted(((k, v) for k, v in costs.items() if 0 < v <= budget), key=lambda kv: (kv[1], kv[0]))
    if not fitting and any(costs.values()):
        raise MatchingError(
            f"ML_MATCHING: no matchKey field, alone or paired with another, narrows the {records} records to at most "
            f"{budget} candidate pairs; give a more identifying field (email, phone, date of birth, id) a matchKey"
        )
    return fitting[:MAX_BLOCKING_RULES]


def _prior(con: duckdb.DuckDBPyConnection, rules: list[tuple[str, ...]], records: int) -> float:
    """Probability that two random records match, from near-certain matches: pairs agreeing
    exactly on two of the three most selective blocking rules at once (on the one rule when
    there is only one), taken as DETERMINISTIC_RECALL of all matches.

    Splink's estimate_probability_two_random_records_match does the same but refuses the
    boundaries a small job reaches (every pair or no pair found), so the count is made here
    and kept inside [1 / pairs, 0.5]: at least one match expected, never a match by default.
    """
    top = rules[:3]
    agreeing = [tuple(dict.fromkeys(a + b)) for a, b in combinations(top, 2)] or top
    pairs = " UNION ".join(
        "SELECT l.unique_id, r.unique_id FROM mlrec l JOIN mlrec r ON l.unique_id < r.unique_id AND "
        + " AND ".join(f"l.{c} = r.{c}" for c in rule)
        for rule in agreeing
    )
    row = con.execute(f"SELECT count(*) FROM ({pairs})").fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    found = row[0]
    total = records * (records - 1) / 2
    return min(max(found / DETERMINISTIC_RECALL / total, 1 / total), 0.5)


def resolve(con: duckdb.DuckDBPyConnection, plan: Plan, records: int) -> tuple[np.ndarray, np.ndarray]:
    """Each accepted record's group anchor (smallest rid of its group) and its group's
    ConfidenceLevel (NaN for a record that matched no other).

    Reads the job's `src` and `ids` relations (see matching.py); leaves its tables in `con`.
    """
    fields = compared_fields(plan)
    columns = [f"f{i}" for i in range(len(fields))]
    features = ", ".join(f"{_feature_sql(f)} AS {c}" for f, c in zip(fields, columns))
    # Stored in rid order (the job's connection does not preserve order by default): seeded
    # sampling draws rows by position, so the same records must sit in the same places.
    con.execute("SET preserve_insertion_order = true")
    con.execute(
        f"CREATE TABLE mlrec AS SELECT ids.rid AS unique_id, {features} FROM src JOIN ids "
        f"ON ids.uid = src.{quote_ident(plan.unique_id)} ORDER BY ids.rid"
    )
    con.execute("SET preserve_insertion_order = false")
    root = np.arange(records, dtype=np.int64)
    confidence = np.full(records, np.nan)
    rules = blocking_rules(con, columns, records) if records > 1 else []
    if not rules:
        return root, confidence
    u, v, p = _predict(con, fields, columns, [r for r, _ in rules], records)
    if u.size:
        root = connected_components(records, u, v)
        best = np.zeros(records)
        np.maximum.at(best, u, p)
        np.maximum.at(best, v, p)
        group = np.full(records, np.inf)
        linked = np.flatnonzero(best > 0)
        np.minimum.at(group, root[linked], best[linked])
        confidence[linked] = np.round(group[root[linked]], 4)
    return root, confidence


def _train_m(linker, rules: list[tuple[str, ...]], columns: list[str]) -> None:
    """EM sessions, most selective rule first, until every comparison has been estimated in
    a session not blocked on it (at most MAX_EM_SESSIONS).

    Splink 5 refuses an m probability that underflows to 0.0 during EM (its issue #2333,
    PR #2851): a level seen only among non-matches of the blocked pairs, e.g. a state that
    never differs between true duplicates. Such a session is dropped and the next rule tried.
    A failing session has already narrowed the model's comparisons in place, so the model
    is put back as it was before it (Splink's settings object has no public API for this).
    """
    from splink import block_on

    unestimated, sessions = set(columns), 0
    for rule in rules:
        if not unestimated - set(rule):
            continue
        before = linker._settings_obj.core_model_settings.copy()
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule), max_pairs=EM_MAX_PAIRS)
        except ValueError as exc:
            if "below the minimum allowed" not in str(exc):
                raise
            linker._settings_obj.core_model_settings = before
            logging.getLogger(__name__).warning(
                "ML_MATCHING: EM session blocked on %s dropped: %s", rule, str(exc).splitlines()[0]
            )
            continue
        unestimated &= set(rule)
        sessions += 1
        if not unestimated or sessions == MAX_EM_SESSIONS:
            break


def _predict(con, fields: list[InputField], columns: list[str], rules: list[tuple[str, ...]], records: int):
    """Train the model on the job's records and return the linked pairs (u, v, probability)."""
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[_comparison(c, f.type) for f, c in zip(fields, columns)],
        blocking_rules_to_generate_predictions=[block_on(*rule) for rule in rules],
        probability_two_random_records_match=_prior(con, rules, records),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    # Training runs on one thread: DuckDB's seeded sampling is repeatable only then, and its
    # parallel float sums vary in their last bits, which EM would carry into the model.
    # Scoring pairs has no such sums, so it gets the connection's threads back.
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    splink_logger = logging.getLogger("splink")
    level = splink_logger.level
    try:
        con.execute("SET threads = 1")
        db_api = DuckDBAPI(connection=con)
        linker = Linker(db_api.register("mlrec"), settings, log_level=logging.ERROR)
        linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=SEED)
        _train_m(linker, rules, columns)
        con.execute(f"SET threads = {int(threads)}")
        predictions = linker.inference.predict(threshold_match_probability=MATCH_PROBABILITY)
        found = con.execute(
            f"SELECT unique_id_l, unique_id_r, match_probability FROM {predictions.physical_name} "
            "ORDER BY unique_id_l, unique_id_r"
        ).fetchnumpy()
    finally:
        con.execute(f"SET threads = {int(threads)}")
        splink_logger.setLevel(level)
    return (
        np.asarray(found["unique_id_l"], dtype=np.int64),
        np.asarray(found["unique_id_r"], dtype=np.int64),
        np.asarray(found["match_probability"], dtype=np.float64),
    )
