"""Benchmark: speed, CPU and memory of the emulator's ML_MATCHING model at scale, next to
the rule-based engine on the same records.

Customers come from the project's sample-data generator (20% noisy duplicates, true entity
kept aside): the example ML domain (er_assets/domains.ml-example.yaml) and the shipped
rule-based `customers` domain share one schema, so both read the same parquet file. Each
job runs in its own child process, so peak RSS (ru_maxrss) is that job's alone; CPU seconds
(user + sys) are shown because wall time on a shared machine is inflated by other load.
Pairwise precision and recall are scored against the generator's entities.

    .venv/bin/python bench/bench_ml_scale.py                  # 100k and 1M records
    .venv/bin/python bench/bench_ml_scale.py --sizes 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from harness import ROOT, generated_sources, in_child, parse_or_run_child

EXAMPLE = ROOT / "er_assets" / "domains.ml-example.yaml"
WORKFLOWS = {"ML_MATCHING": (EXAMPLE, "customers_ml"), "rule-based": (None, "customers")}


def _documents(kind: str) -> tuple[dict, dict]:
    from er_assets.config import load_config
    from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response

    path, name = WORKFLOWS[kind]
    config = load_config(path)
    domain = config.domain(name)
    return schema_mapping_response(domain, config.settings), matching_workflow_response(domain, config.settings)


def generate(path: Path, n: int) -> None:
    import duckdb

    from er_assets.config import load_config
    from er_assets.ops.sample_data import DUPLICATE_SHARE, generate_sql

    domain = load_config(EXAMPLE).domain("customers_ml")
    params = {
        "n": n,
        "entities": max(1, round(n * (1 - DUPLICATE_SHARE))),
        "seed": 7,
        "start": dt.date(2024, 1, 1),
        "days": 1,
        "id_offset": 0,
    }
    con = duckdb.connect()
    con.execute(f"COPY ({generate_sql(domain)}) TO '{path}' (FORMAT parquet)", params)
    con.close()


def prepare(kind: str, source: Path, out: Path):
    from er_assets.emulator.matching import run_matching

    schema, workflow = _documents(kind)
    return lambda: run_matching(source, schema, workflow, out, "bench")


def quality(source: Path, out: Path) -> tuple[float, float]:
    import duckdb

    con = duckdb.connect()
    correct, found, truth = con.execute(
        """
        WITH j AS (SELECT true_entity, MatchID FROM read_parquet($source) s
                   JOIN read_csv($out, all_varchar = true) o ON o.RecordId = s.customer_id)
        SELECT (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM j GROUP BY MatchID, true_entity)),
               (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM j GROUP BY MatchID)),
               (SELECT sum(n * (n - 1) // 2) FROM (SELECT count(*) AS n FROM j GROUP BY true_entity))
        """,
        {"source": str(source), "out": str(out / "success" / "*.csv")},
    ).fetchone()
    con.close()
    return correct / found if found else 1.0, correct / truth if truth else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parse_or_run_child(parser, WORKFLOWS, prepare)
    if args is None:
        return
    print(
        f"{'records':>9}  {'workflow':<12} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'matchIDs':>9} "
        f"{'precision':>9} {'recall':>7}"
    )
    for tmp, n, source in generated_sources(args.sizes, "bench-ml-scale-", generate):
        for kind in WORKFLOWS:
            out = tmp / f"{kind}-{n}"
            run = in_child(__file__, kind, source, out)
            precision, recall = quality(source, out)
            print(
                f"{n:>9}  {kind:<12} {run['wall']:>7.2f} {run['cpu']:>7.2f} {run['peak_mb']:>8.0f} "
                f"{run['result']['matchIDs']:>9} {precision:>9.4f} {recall:>7.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
