"""Blocking data-quality checks of each stage, with thresholds from the configuration.

Each stage computes its figures in bulk (warehouse SQL over the extract, DuckDB over the
match output, the instance's event log for history) and these functions judge them. Every
result says in its description what was measured against what, and carries the observed
value, the threshold and a few offending record ids (ids only, never values) in its metadata.
Severity is ERROR unless `dq.severity` makes a check a warning; only ERROR failures block.
"""

from __future__ import annotations

import datetime as dt
import statistics
import warnings
from typing import Any

import dagster as dg

from er_assets.config import CHECK_NAMES, Anomaly, Domain
from er_assets.history import LatePartition
from er_assets.pipeline.lateness import due_at
from er_assets.resources.warehouses.base import MAX_UNIQUE_ID_LENGTH

DESCRIPTIONS = {
    "source_schema": "Every configured column exists in the source table with a type that can be extracted",
    "min_records": "At least dq.min_records records in the partition",
    "required_fields": "dq.required_fields are present and non-empty in every record (null rate per field)",
    "unique_ids": f"Unique ids are non-empty, unique and at most {MAX_UNIQUE_ID_LENGTH} characters",
    "value_formats": "Emails, phone numbers and postcodes have their expected shape, "
    "within dq.max_invalid_format_rate percent per field",
    "record_count_anomaly": "Record count within dq.anomaly.max_deviation of the trailing median of earlier partitions",
    "match_rate": "Match rate inside [dq.min_match_rate, dq.max_match_rate] percent",
    "no_data_loss": "Every extracted record was processed and none was rejected",
    "match_rate_baseline": "Match rate within dq.anomaly.max_deviation of the trailing median of earlier partitions",
    "min_confidence": "ML matching: at most dq.min_confidence.max_rate percent of matched records have a "
    "ConfidenceLevel below dq.min_confidence.threshold",
    "confidence_baseline": "ML matching: mean ConfidenceLevel of matched records within dq.anomaly.max_deviation "
    "of the trailing median of earlier partitions",
    "row_count": "Rows (and MatchIDs) of the match output equal those the matched stage recorded; the "
    "partition is replaced only when every load check passes",
    "no_duplicate_ids": "No record id appears twice in the partition",
    "match_ids_assigned": "Every extracted record is in the target table with a MatchID",
    "no_value_loss": "No field has fewer non-empty values in the target table than in the extract "
    "(a value in any script must not arrive empty)",
    "entity_assigned": "Every record of the partition has a durable entity id in the target table and the registry",
    "entity_churn": "Known records the partition moved to another entity (merges, splits) stay within "
    "identity.max_churn_rate percent of the partition's records",
    "oversized_entities": "No entity the partition touched holds more than identity.max_entity_size records "
    "(a placeholder value such as N/A gluing unrelated records)",
    "delivered": "The partition is delivered to the target; overdue while not delivered schedule.sla_minutes "
    "after its schedule fired (a warning, reported by the er_late_partitions sensor)",
}
# Warnings unless dq.severity says otherwise: being late says nothing about the data.
WARN_BY_DEFAULT = frozenset({"delivered"})
# Judged against earlier partitions: not defined at all when dq.anomaly is disabled.
HISTORY_CHECKS = frozenset({"record_count_anomaly", "match_rate_baseline", "confidence_baseline"})
# Judge the ConfidenceLevel column: defined only for ML_MATCHING domains.
ML_CHECKS = frozenset({"min_confidence", "confidence_baseline"})


def check_names(domain: Domain, stage: str) -> list[str]:
    return [
        n
        for n in CHECK_NAMES[stage]
        if (domain.dq.anomaly.enabled or n not in HISTORY_CHECKS) and (domain.ml_matching or n not in ML_CHECKS)
    ]


def specs(domain: Domain, stage: str, partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """Partitioned like their asset: only then does Dagster record each evaluation under its
    partition, which the gate across runs and the UI's per-partition check status read."""
    with warnings.catch_warnings():
        # Partitioned check specs are a preview feature in Dagster 1.13 and would warn on every
        # definitions load; what we rely on (evaluations stored per partition) is under test.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name,
                asset=dg.AssetKey([domain.name, stage]),
                description=DESCRIPTIONS[name],
                blocking=name not in WARN_BY_DEFAULT,
                partitions_def=partitions,
            )
            for name in check_names(domain, stage)
        ]


def _severity(domain: Domain, name: str, severity: str | None = None) -> dg.AssetCheckSeverity:
    default = "WARN" if name in WARN_BY_DEFAULT else "ERROR"
    return dg.AssetCheckSeverity(severity or domain.dq.severity.get(name, default))


def _result(
    domain: Domain, name: str, passed: bool, description: str, severity: str | None = None, **metadata
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=_severity(domain, name, severity),
        description=description,
        metadata=metadata,
    )


def blocking_failures(results) -> list[str]:
    """The checks that failed with ERROR severity: the ones that block. A failed WARN check
    (a warning, or a history check that could not judge yet) is shown but blocks nothing."""
    return [r.check_name for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


# --- extract ---------------------------------------------------------------------------------


def schema_drift_results(domain: Domain, problems: dict[str, str]) -> list[dg.AssetCheckResult]:
    """The only result an extract can give when its source columns are gone: nothing else
    could be measured, so the other checks are left unevaluated rather than faked."""
    listed = "; ".join(f"{column}: {problem}" for column, problem in problems.items())
    return [
        _result(
            domain,
            "source_schema",
            False,
            f"source table {domain.source.table} does not match the configuration ({listed}); nothing was "
            "extracted. Fix the table or the domain's schema in the configuration",
            observed=problems,
            threshold="every configured column present with a usable type",
            table=domain.source.table,
        )
    ]


def extract_results(domain: Domain, profile: dict, history: dict[str, float]) -> list[dg.AssetCheckResult]:
    results = [
        _result(
            domain,
            "source_schema",
            True,
            f"all {len(domain.schema.columns)} configured columns usable",
            observed={},
            table=domain.source.table,
        ),
        _min_records(domain, profile["rows"]),
        _required_fields(domain, profile),
        _unique_ids(domain, profile),
        _value_formats(domain, profile),
    ]
    if domain.dq.anomaly.enabled:
        results.append(_against_history(domain, "record_count_anomaly", "record count", profile["rows"], history))
    return results


def _min_records(domain: Domain, rows: int) -> dg.AssetCheckResult:
    needed = domain.dq.min_records
    text = f"{rows} records in the partition; at least {needed} required (dq.min_records)"
    return _result(
        domain,
        "min_records",
        rows >= needed,
        text if rows else f"empty extract: {text}",
        observed=rows,
        threshold=needed,
    )


def _required_fields(domain: Domain, profile: dict) -> dg.AssetCheckResult:
    rows, nulls = profile["rows"], profile["null_counts"]
    empty = {f: n for f, n in nulls.items() if n}
    rates = {f: _percent(n, rows) for f, n in nulls.items()}
    if empty:
        text = "; ".join(f"{f} is empty in {n} of {rows} records ({rates[f]}%)" for f, n in empty.items())
        text += "; required fields must be non-empty in every record (dq.required_fields)"
    else:
        text = f"required fields {domain.dq.required_fields} non-empty in all {rows} records"
    return _result(
        domain,
        "required_fields",
        not empty,
        text,
        null_counts=nulls,
        null_rates_percent=rates,
        threshold=0,
        sample_ids=profile["sample_ids"]["required_fields"],
    )


def _unique_ids(domain: Domain, profile: dict) -> dg.AssetCheckResult:
    uid = domain.schema.unique_id
    # AWS rejects ids over the length limit in rule-based workflows only (user guide, Troubleshooting).
    kinds = ("empty_ids", "duplicate_ids") if domain.ml_matching else ("empty_ids", "duplicate_ids", "long_ids")
    counts = {k: profile[k] for k in kinds}
    found = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n]
    limit = "" if domain.ml_matching else f" and at most {MAX_UNIQUE_ID_LENGTH} characters"
    text = (
        f"{uid}: {', '.join(found)}; ids must be non-empty, unique{limit}, or the service rejects the records"
        if found
        else f"all {uid} values valid"
    )
    samples = {k: profile["sample_ids"][k] for k in ("duplicate_ids", "long_ids")}
    return _result(domain, "unique_ids", not found, text, **counts, max_length=MAX_UNIQUE_ID_LENGTH, sample_ids=samples)


def _value_formats(domain: Domain, profile: dict) -> dg.AssetCheckResult:
    tolerated = domain.dq.max_invalid_format_rate
    rates = {f: _percent(v["invalid"], v["values"]) for f, v in profile["formats"].items()}
    over = {f: rate for f, rate in rates.items() if rate > tolerated}
    if over:
        text = (
            "; ".join(
                f"{f} ({profile['formats'][f]['type']}): {profile['formats'][f]['invalid']} of "
                f"{profile['formats'][f]['values']} values malformed ({rate}%)"
                for f, rate in over.items()
            )
            + f"; at most {tolerated}% tolerated (dq.max_invalid_format_rate)"
        )
    elif rates:
        text = f"malformed values within {tolerated}%: " + ", ".join(f"{f} {r}%" for f, r in rates.items())
    else:
        text = "no email, phone or postcode fields to check"
    return _result(
        domain,
        "value_formats",
        not over,
        text,
        invalid_rates_percent=rates,
        threshold=tolerated,
        invalid_counts={f: v["invalid"] for f, v in profile["formats"].items()},
        sample_ids={f: v["sample_ids"] for f, v in profile["formats"].items() if v["sample_ids"]},
    )


# --- history ----------------------------------------------------------------------------------


def _against_history(
    domain: Domain, name: str, what: str, observed: float, history: dict[str, float]
) -> dg.AssetCheckResult:
    """`observed` against the trailing median of `history` (earlier partitions that passed
    their own checks -> value).

    Too little history is no pass: Dagster has no "inconclusive" result, so the check fails
    as a warning (yellow in the UI, blocking nothing) and says it did not judge.
    """
    anomaly: Anomaly = domain.dq.anomaly
    base: dict[str, Any] = {
        "observed": observed,
        "history": history,
        "min_history": anomaly.min_history,
        "max_deviation": anomaly.max_deviation,
    }
    if len(history) < anomaly.min_history:
        return _result(
            domain,
            name,
            False,
            f"not judged: {len(history)} of {anomaly.min_history} partitions of "
            f"history (dq.anomaly.min_history); only earlier partitions whose checks passed count",
            severity="WARN",
            judged=False,
            **base,
        )
    median = statistics.median(history.values())
    low, high = median * (1 - anomaly.max_deviation), median * (1 + anomaly.max_deviation)
    passed = low <= observed <= high
    text = (
        f"{what} {observed} {'inside' if passed else 'outside'} [{low:g}, {high:g}], the trailing median "
        f"{median:g} of {len(history)} earlier partitions +/- {anomaly.max_deviation:.0%} (dq.anomaly.max_deviation)"
    )
    return _result(domain, name, passed, text, judged=True, **base, median=median, band=[round(low, 2), round(high, 2)])


# --- matched ----------------------------------------------------------------------------------


def matched_results(
    domain: Domain,
    extracted: int,
    metrics: dict,
    summary: dict,
    rejected: int,
    history: dict[str, float],
    confidence: dict | None = None,
    confidence_history: dict[str, float] | None = None,
    context: int = 0,
) -> list[dg.AssetCheckResult]:
    """`confidence` (warehouses.base.confidence_figures) and its history: ML_MATCHING domains only.
    `context`: the known entities' records the extract added to the job's input (the summary
    counts only the partition's own records)."""
    dq = domain.dq
    rate = summary["match_rate"]
    results = [
        _result(
            domain,
            "match_rate",
            dq.min_match_rate <= rate <= dq.max_match_rate,
            f"{rate}% of {summary['records']} records share their MatchID with another record; expected "
            f"[{dq.min_match_rate}, {dq.max_match_rate}]% (dq.min_match_rate, dq.max_match_rate)",
            observed=rate,
            min_match_rate=dq.min_match_rate,
            max_match_rate=dq.max_match_rate,
            matched_records=summary["matched_records"],
            match_ids=summary["match_ids"],
        ),
        _no_data_loss(domain, extracted, metrics, summary, rejected, context),
    ]
    if dq.anomaly.enabled:
        results.append(_against_history(domain, "match_rate_baseline", "match rate", rate, history))
    if domain.ml_matching:
        assert confidence is not None  # every warehouse gives ML_MATCHING output's confidence figures
        results += _confidence(domain, confidence, confidence_history or {})
    return results


def _confidence(domain: Domain, summary: dict, history: dict[str, float]) -> list[dg.AssetCheckResult]:
    """min_confidence and confidence_baseline over the matched records' ConfidenceLevel."""
    wanted = domain.dq.min_confidence
    base: dict[str, Any] = {"threshold": wanted.threshold, "max_rate": wanted.max_rate}
    if not summary["present"]:
        text = "the match output has no ConfidenceLevel column, which ML_MATCHING output always has"
        results = [_result(domain, "min_confidence", False, text, **base)]
        if domain.dq.anomaly.enabled:
            results.append(_result(domain, "confidence_baseline", False, text))
        return results
    matched = summary["matched_records"]
    missing = matched - summary["with_confidence"]
    rate = _percent(summary["below_threshold"], matched)
    problems = []
    if rate > wanted.max_rate:
        problems.append(
            f"{summary['below_threshold']} of {matched} matched records ({rate}%) have a ConfidenceLevel "
            f"below {wanted.threshold}; at most {wanted.max_rate}% tolerated (dq.min_confidence)"
        )
    if missing:
        problems.append(f"{missing} matched records have no ConfidenceLevel")
    if summary["out_of_range"]:
        problems.append(f"{summary['out_of_range']} ConfidenceLevel values outside the documented 0.0-1.0")
    text = "; ".join(problems) or (
        f"{rate}% of {matched} matched records below ConfidenceLevel {wanted.threshold} "
        f"(at most {wanted.max_rate}%); mean {summary['mean']}, lowest {summary['min']}"
    )
    results = [
        _result(
            domain,
            "min_confidence",
            not problems,
            text,
            **base,
            observed=rate,
            below_threshold=summary["below_threshold"],
            matched_records=matched,
            without_confidence=missing,
            out_of_range=summary["out_of_range"],
            mean_confidence=summary["mean"],
            min_confidence=summary["min"],
            sample_ids=summary["sample_ids"],
        )
    ]
    if domain.dq.anomaly.enabled and summary["mean"] is None:
        # Nothing to judge is no pass either: a warning that says so, as _against_history gives.
        results.append(
            _result(
                domain,
                "confidence_baseline",
                False,
                "not judged: no matched record has a ConfidenceLevel",
                severity="WARN",
                judged=False,
                observed=None,
                history=history,
            )
        )
    elif domain.dq.anomaly.enabled:
        results.append(
            _against_history(domain, "confidence_baseline", "mean ConfidenceLevel", summary["mean"], history)
        )
    return results


def _no_data_loss(
    domain: Domain, extracted: int, metrics: dict, summary: dict, rejected: int, context: int = 0
) -> dg.AssetCheckResult:
    lost = {
        "input_vs_extracted": metrics.get("inputRecords", 0) - extracted - context,
        "records_not_processed": metrics.get("recordsNotProcessed", 0),
        "rejected_records": rejected,
        "output_vs_extracted": summary["records"] - extracted,
    }
    problems = {k: v for k, v in lost.items() if v}
    text = (
        f"records lost between stages: {problems} (0 expected for each), {extracted} extracted "
        f"(+ {context} context records), {metrics.get('inputRecords', 0)} read by the job, "
        f"{summary['records']} of the partition's in its output"
        if problems
        else f"all {extracted} records accounted for (+ {context} context records)"
    )
    return _result(
        domain, "no_data_loss", not problems, text, extracted=extracted, context_records=context, threshold=0, **lost
    )


# --- loaded -----------------------------------------------------------------------------------


def loaded_results(
    domain: Domain, output_rows: int, extracted: int, stats: dict, match_ids: int | None = None
) -> list[dg.AssetCheckResult]:
    """Judged on the staged rows, before they replace the partition: `output_rows` and
    `match_ids` are what the matched stage recorded of the same output, so a truncated or
    swapped output is refused rather than loaded."""
    samples = stats["sample_ids"]
    with_match_id = stats["rows"] - stats["missing_match_ids"]
    agree = stats["rows"] == output_rows and match_ids in (None, stats["match_ids"])
    return [
        _result(
            domain,
            "row_count",
            agree,
            f"{stats['rows']} rows with {stats['match_ids']} MatchIDs for the {output_rows} rows"
            + ("" if match_ids is None else f" with {match_ids} MatchIDs")
            + " the matched stage recorded",
            observed=stats["rows"],
            expected=output_rows,
            match_ids=stats["match_ids"],
            expected_match_ids=match_ids,
        ),
        _result(
            domain,
            "no_duplicate_ids",
            stats["duplicate_ids"] == 0,
            f"{stats['duplicate_ids']} duplicate record ids",
            observed=stats["duplicate_ids"],
            threshold=0,
            sample_ids=samples["duplicate_ids"],
        ),
        _result(
            domain,
            "match_ids_assigned",
            with_match_id == extracted and not stats["missing_match_ids"],
            f"{with_match_id} of {extracted} extracted records loaded with a MatchID; "
            f"{stats['missing_match_ids']} loaded rows lack one",
            observed=with_match_id,
            expected=extracted,
            missing_match_ids=stats["missing_match_ids"],
            sample_ids=samples["missing_match_ids"],
        ),
    ]


def no_value_loss(domain: Domain, extracted: dict[str, int] | None, loaded: dict[str, int]) -> dg.AssetCheckResult:
    """Normalisation may change a value, never erase it: a field with fewer non-empty values in
    the target than in the extract lost some on the way (a name in a script the matching step
    mapped to nothing, a column the load dropped)."""
    if extracted is None:
        return _result(
            domain,
            "no_value_loss",
            False,
            "not judged: the extract of this partition predates per-field counts; re-run extract to have them",
            severity="WARN",
            judged=False,
            observed={},
        )
    lost = {field: n - loaded.get(field, 0) for field, n in extracted.items() if loaded.get(field, 0) < n}
    text = (
        "; ".join(
            f"{field}: {n} non-empty values extracted, {loaded.get(field, 0)} in the target"
            for field, n in extracted.items()
            if field in lost
        )
        + "; values arrived empty in the target"
        if lost
        else f"every non-empty value of {len(extracted)} fields arrived non-empty in the target"
    )
    return _result(
        domain,
        "no_value_loss",
        not lost,
        text,
        lost_values=lost,
        extracted_non_empty=extracted,
        loaded_non_empty=loaded,
        threshold=0,
    )


def identity_results(domain: Domain, identity, history: dict[str, float] | None = None) -> list[dg.AssetCheckResult]:
    """The entity registry's checks, judged inside the load's transaction on what applying the
    partition did (`base.IdentityFigures`): when one blocks, target and registry roll back.
    `history`: earlier partitions' churn rates, the baseline the churn is shown against (a
    quiet registry's median is 0, so the limit itself is absolute: identity.max_churn_rate)."""
    wanted, history = domain.identity, history or {}
    rate = identity.churn_rate
    oversized = [{"entity_id": e, "records": n} for e, n in identity.oversized]
    median = statistics.median(history.values()) if history else None
    baseline = (
        f"; the trailing median of {len(history)} earlier partitions is {median:g}%"
        if history
        else "; no earlier partition to compare with"
    )
    return [
        _result(
            domain,
            "entity_assigned",
            identity.records > 0 and identity.without_entity == 0,
            f"{identity.records - identity.without_entity} of {identity.records} records of the partition have "
            f"an entity id",
            observed=identity.without_entity,
            threshold=0,
            records=identity.records,
        ),
        _result(
            domain,
            "entity_churn",
            rate <= wanted.max_churn_rate,
            f"{identity.churn} known records moved to another entity ({rate}% of the partition's "
            f"{identity.records}; at most {wanted.max_churn_rate}%, identity.max_churn_rate){baseline}: "
            f"{identity.merged} entities merged into another, {identity.split} split",
            observed=rate,
            threshold=wanted.max_churn_rate,
            churned_records=identity.churn,
            entities_merged=identity.merged,
            entities_split=identity.split,
            history=history,
            median=median,
        ),
        _result(
            domain,
            "oversized_entities",
            not oversized,
            (
                f"{len(oversized)} entities hold more than {wanted.max_entity_size} records "
                f"(identity.max_entity_size), the largest {oversized[0]['entity_id']} with "
                f"{oversized[0]['records']}: look for a placeholder value (N/A, noemail@...) shared by its "
                f"records (`autosys-bridge entities show {domain.name} {oversized[0]['entity_id']}`)"
            )
            if oversized
            else f"no entity the partition touched holds more than {wanted.max_entity_size} records",
            observed=len(oversized),
            threshold=wanted.max_entity_size,
            entities=oversized,
        ),
    ]


def delivered(domain: Domain, partition: str, replaced: bool, now: dt.datetime) -> dg.AssetCheckResult:
    """The load's word on the `delivered` check: the partition is delivered (or not, when the
    load's checks refused the output), and how it stood against its due time."""
    due = due_at(domain, partition)
    late = max(0.0, (now - due).total_seconds() / 60)
    when = "on time" if not late else f"{late:.0f} minutes after it was due"
    return _result(
        domain,
        "delivered",
        replaced,
        f"delivered {now:%Y-%m-%d %H:%M} UTC, {when} ({_due(domain, due)})"
        if replaced
        else f"not delivered: the load's checks refused the match output ({_due(domain, due)})",
        due_at=due.isoformat(),
        minutes_late=round(late, 1),
    )


def overdue(domain: Domain, late: LatePartition) -> dg.AssetCheckEvaluation:
    """The `delivered` check of a partition the late-partition sensor found undelivered past its
    due time, reported without a run: the UI shows the partition overdue until a load
    delivers it (`delivered`)."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey([domain.name, "loaded"]),
        check_name="delivered",
        passed=False,
        partition=late.partition_key,
        severity=_severity(domain, "delivered"),
        description=f"overdue: not delivered ({_due(domain, late.due_at)}); {late.state}",
        metadata={"due_at": late.due_at.isoformat(), "state": late.state},
    )


def _due(domain: Domain, due: dt.datetime) -> str:
    return (
        f"due {due:%Y-%m-%d %H:%M} UTC, {domain.schedule.sla_minutes} minutes (schedule.sla_minutes) after its schedule"
    )
