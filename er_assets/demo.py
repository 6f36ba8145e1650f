"""`python -m er_assets.demo`: seed the local warehouse and run every domain end to end.

For each domain, the latest complete partition is seeded with generated records (with
true duplicates) and extract -> matched -> loaded is materialised into the local
DAGSTER_HOME, exactly as `autosys-bridge run DOMAIN all` would. Then it prints where the
results are and what they hold.
"""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT_RECORDS = {"customers": 10_000, "products": 2_000, "vendors": 1_000}


def summary(domain, partition: str) -> dict:
    import duckdb

    from er_assets.deployment import local_paths

    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        rows, groups, matched = con.execute(
            f"""
            WITH t AS (SELECT "MatchID", count(*) OVER (PARTITION BY "MatchID") AS n
                       FROM "{domain.target.table}" WHERE partition_key = ?)
            SELECT count(*), count(DISTINCT "MatchID"), count(*) FILTER (WHERE n > 1) FROM t
            """,
            [partition],
        ).fetchone()
    finally:
        con.close()
    return {"rows": rows, "match_ids": groups, "matched": matched}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m er_assets.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, help="records per domain (default: customers 10000, products 2000, vendors 1000)")
    parser.add_argument("--domain", action="append", help="only these domains (repeatable)")
    args = parser.parse_args(argv)

    from autosys_bridge import exit_codes
    from autosys_bridge.runner import run_stage
    from er_assets.config import load_config
    from er_assets.deployment import deployment, ensure_dagster_home, local_paths
    from er_assets.partitions import latest_complete_partition
    from er_assets.sample_data import seed_partition

    if deployment() != "local":
        print("the demo runs on the local deployment only (unset ER_DEPLOYMENT)", file=sys.stderr)
        return exit_codes.USAGE
    config = load_config()
    home = ensure_dagster_home()
    names = args.domain or list(config.domains)
    results, worst = [], exit_codes.OK
    for name in names:
        domain = config.domain(name)
        partition = latest_complete_partition(domain)
        records = args.records or DEFAULT_RECORDS.get(name, 1_000)
        started = time.monotonic()
        seed_partition(domain, partition, records, local_paths()["warehouse"])
        assets = [f"{name}/{stage}" for stage in ("extract", "matched", "loaded")]
        code = run_stage(config, domain, "all", assets, partition, {}, None, trigger="demo")
        worst = worst or code
        results.append((name, partition, records, code, time.monotonic() - started))

    paths = local_paths()
    print("\n== Entity resolution demo ==")
    print(f"{'domain':<10} {'partition':<11} {'extracted':>9} {'match ids':>9} {'matched':>8} {'loaded':>7} {'seconds':>7}  status")
    for name, partition, records, code, seconds in results:
        figures = summary(config.domain(name), partition) if code == exit_codes.OK else {"rows": 0, "match_ids": 0, "matched": 0}
        print(f"{name:<10} {partition:<11} {records:>9} {figures['match_ids']:>9} {figures['matched']:>8} "
              f"{figures['rows']:>7} {seconds:>7.1f}  {exit_codes.DESCRIPTIONS[code]}")
    print(f"\nwarehouse (DuckDB):  {paths['warehouse']}  tables: "
          + ", ".join(config.domain(n).target.table for n in names))
    print(f"object store:        {paths['objects']}")
    print(f"Dagster instance:    {home}  (explore with: make dev)")
    return worst


if __name__ == "__main__":
    sys.exit(main())
