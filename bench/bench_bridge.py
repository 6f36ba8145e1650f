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
import time
from pathlib import Path

from harness import PARTITION, local_deployment, seed_customers

BIN = Path(sys.executable).parent


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
    with local_deployment() as deployment:
        seed_customers(deployment, 1_000)
        env = dict(os.environ)
        rows = {
            "autosys-bridge run customers extract": timed(
                [str(BIN / "autosys-bridge"), "run", "customers", "extract", "--date", PARTITION], env, args.repeat
            ),
            "dagster asset materialize (same stage)": timed(
                [
                    str(BIN / "dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "er_assets.defs.definitions",
                    "--select",
                    "customers/extract",
                    "--partition",
                    PARTITION,
                ],
                env,
                args.repeat,
            ),
            "autosys-bridge --help": timed([str(BIN / "autosys-bridge"), "--help"], env, args.repeat),
            "python -c pass": timed([sys.executable, "-c", "pass"], env, args.repeat),
        }
    print(f"{'command':<42} {'best s':>8} {'median s':>9}   ({args.repeat} runs each)")
    for name, times in rows.items():
        print(f"{name:<42} {min(times):>8.3f} {statistics.median(times):>9.3f}")


if __name__ == "__main__":
    main()
