"""Benchmark: the bridge's start-up and run overhead against the raw Dagster CLI.

In one run, on a fresh local deployment in a temporary folder:
- `autosys-bridge run customers extract` on a 1,000-record partition, against
  `dagster asset materialize` of the same asset and partition (goal: no slower);
- `autosys-bridge --help` against `python -c pass` (goal: under one second).

Each command runs --repeat times; the best (least disturbed) and the median are printed.

    .venv/bin/python bench/bench_bridge.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PARTITION = "2026-11-28"


def timed(command: list[str], env: dict, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from er_assets.config import load_config
    from er_assets.ops.sample_data import seed_partition

    with tempfile.TemporaryDirectory(prefix="er-bench-") as tmp:
        env = {**os.environ, "ER_DATA_DIR": tmp, "DAGSTER_HOME": f"{tmp}/dagster_home"}
        os.environ.update(ER_DATA_DIR=tmp, DAGSTER_HOME=f"{tmp}/dagster_home")
        from er_assets.defs.instance import ensure_dagster_home

        ensure_dagster_home()
        seed_partition(load_config().domain("customers"), PARTITION, 1_000, Path(tmp) / "warehouse.duckdb")
        rows = {
            "autosys-bridge run customers extract": timed(
                [str(BIN / "autosys-bridge"), "run", "customers", "extract", "--date", PARTITION], env, args.repeat),
            "dagster asset materialize (same stage)": timed(
                [str(BIN / "dagster"), "asset", "materialize", "-m", "er_assets.defs.definitions",
                 "--select", "customers/extract", "--partition", PARTITION], env, args.repeat),
            "autosys-bridge --help": timed([str(BIN / "autosys-bridge"), "--help"], env, args.repeat),
            "python -c pass": timed([sys.executable, "-c", "pass"], env, args.repeat),
        }
    print(f"{'command':<42} {'best s':>8} {'median s':>9}   ({args.repeat} runs each)")
    for name, times in rows.items():
        print(f"{name:<42} {min(times):>8.3f} {statistics.median(times):>9.3f}")


if __name__ == "__main__":
    main()
