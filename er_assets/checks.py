"""Blocking data-quality checks of each stage, with thresholds from the configuration.

Each stage computes its figures in bulk (warehouse SQL over the extract, DuckDB over the
match output) and these functions judge them. A failing check says in its metadata which
rule failed, the observed value and the threshold.
"""

from __future__ import annotations

import dagster as dg

from er_assets.config import Domain
from er_assets.warehouses.base import MAX_UNIQUE_ID_LENGTH

EXTRACT_CHECKS = {
    "min_records": "At least dq.min_records records in the partition",
    "required_fields": "dq.required_fields are present and non-empty in every record",
    "unique_ids": f"Unique ids are non-empty, unique and at most {MAX_UNIQUE_ID_LENGTH} characters",
}
MATCHED_CHECKS = {
    "match_rate": "Match rate inside [dq.min_match_rate, dq.max_match_rate] percent",
    "no_data_loss": "Every extracted record was processed and none was rejected",
}
LOADED_CHECKS = {
    "row_count": "Rows in the target table for the partition equal rows in the match output",
    "no_duplicate_ids": "No record id appears twice in the partition",
}


def specs(domain: Domain, stage: str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=dg.AssetKey([domain.name, stage]), description=text, blocking=True)
        for name, text in checks.items()
    ]


def _result(name: str, passed: bool, description: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def extract_results(domain: Domain, profile: dict) -> list[dg.AssetCheckResult]:
    dq = domain.dq
    rows = profile["rows"]
    nulls = {f: n for f, n in profile["null_counts"].items() if n}
    bad_ids = {k: profile[k] for k in ("empty_ids", "duplicate_ids", "long_ids") if profile[k]}
    return [
        _result("min_records", rows >= dq.min_records,
                f"{rows} records; at least {dq.min_records} required", observed=rows, threshold=dq.min_records),
        _result("required_fields", not nulls,
                f"empty required fields: {nulls}" if nulls else "all required fields present",
                null_counts=profile["null_counts"], threshold=0),
        _result("unique_ids", not bad_ids,
                f"invalid unique ids: {bad_ids}" if bad_ids else "all unique ids valid",
                **{k: profile[k] for k in ("empty_ids", "duplicate_ids", "long_ids")}),
    ]


def matched_results(domain: Domain, extracted: int, metrics: dict, summary: dict, rejected: int) -> list[dg.AssetCheckResult]:
    dq = domain.dq
    rate = summary["match_rate"]
    lost = {
        "input_vs_extracted": metrics.get("inputRecords", 0) - extracted,
        "records_not_processed": metrics.get("recordsNotProcessed", 0),
        "rejected_records": rejected,
        "output_vs_extracted": summary["records"] - extracted,
    }
    problems = {k: v for k, v in lost.items() if v}
    return [
        _result("match_rate", dq.min_match_rate <= rate <= dq.max_match_rate,
                f"match rate {rate}% against [{dq.min_match_rate}, {dq.max_match_rate}]",
                observed=rate, min_match_rate=dq.min_match_rate, max_match_rate=dq.max_match_rate),
        _result("no_data_loss", not problems,
                f"records lost between stages: {problems}" if problems else f"all {extracted} records accounted for",
                extracted=extracted, **lost),
    ]


def loaded_results(output_rows: int, stats: dict) -> list[dg.AssetCheckResult]:
    return [
        _result("row_count", stats["rows"] == output_rows,
                f"{stats['rows']} rows loaded for {output_rows} match output rows",
                observed=stats["rows"], expected=output_rows),
        _result("no_duplicate_ids", stats["duplicate_ids"] == 0,
                f"{stats['duplicate_ids']} duplicate record ids", observed=stats["duplicate_ids"], threshold=0),
    ]
