"""Benchmark: the bridge's fixed cost per stage against the raw Dagster CLI.

In one run, on a fresh local deployment in a temporary folder:
- a 1,000-record stage: `autosys-bridge run customers extract` of a partition extracted for
  the first time, against `dagster asset materialize` of the same asset for another fresh
  partition (goal: no slower);
- a no-op stage: the same extract again, its source unchanged, so the stage only proves the
  earlier extract still stands (fingerprint) and reuses it: the bridge's fixed cost;
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


def timed(commands: list[list[str]], env: dict) -> list[float]:
    times = []
    for command in commands:
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_deployment() as deployment:
        fresh = [f"2026-10-{day:02d}" for day in range(1, 2 * args.repeat + 1)]
        for partition in [PARTITION, *fresh]:
            seed_customers(deployment, 1_000, partition)
        env = dict(os.environ)
        bridge = [str(BIN / "autosys-bridge"), "run", "customers", "extract", "--date"]
        dagster = [str(BIN / "dagster"), "asset", "materialize", "-m", "er_assets.defs.definitions"]
        dagster += ["--select", "customers/extract", "--partition"]
        rows = {
            "bridge: 1,000-record extract": timed([[*bridge, p] for p in fresh[: args.repeat]], env),
            "dagster asset materialize (same stage)": timed([[*dagster, p] for p in fresh[args.repeat :]], env),
            "bridge: no-op extract (unchanged, reused)": timed([[*bridge, PARTITION]] * (args.repeat + 1), env)[1:],
            "autosys-bridge --help": timed([[str(BIN / "autosys-bridge"), "--help"]] * args.repeat, env),
            "python -c pass": timed([[sys.executable, "-c", "pass"]] * args.repeat, env),
        }
    print(f"{'command':<42} {'best s':>8} {'median s':>9}   ({args.repeat} runs each)")
    for name, times in rows.items():
        print(f"{name:<42} {min(times):>8.3f} {statistics.median(times):>9.3f}")


if __name__ == "__main__":
    main()
