"""Benchmark: one customers partition end to end on the local deployment.

Seeds N generated customers (default 100,000) into a fresh local deployment, runs
`autosys-bridge run customers all` and prints the wall time of the whole command and of
each stage (from the stages' own materialisation metadata).

    .venv/bin/python bench/bench_pipeline.py [--records 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from harness import PARTITION, local_deployment, seed_customers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with local_deployment() as deployment:
        import dagster as dg

        started = time.perf_counter()
        seed_customers(deployment, args.records)
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).with_name("autosys-bridge")), "run", "customers", "all", "--date", PARTITION],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        total = time.perf_counter() - started
        with dg.DagsterInstance.get() as instance:
            seconds = {}
            for stage in ("extract", "matched", "loaded"):
                record = instance.fetch_materializations(dg.AssetKey(["customers", stage]), limit=1).records[0]
                seconds[stage] = record.asset_materialization.metadata["seconds"].value
    print(f"customers partition of {args.records:,} records")
    print(f"  seeding the source table       {seeded:7.2f} s")
    for stage, value in seconds.items():
        print(f"  {stage:<30} {value:7.2f} s")
    print(f"  autosys-bridge run ... all     {total:7.2f} s (whole command, process start included)")


if __name__ == "__main__":
    main()
