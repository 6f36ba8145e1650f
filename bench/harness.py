"""What the benchmarks share: a fresh local deployment, generated sources, and a job measured
in a child process of its own, so peak RSS (ru_maxrss) is that job's alone.

A benchmark script runs itself with `--child KIND --source PATH --out PATH` (`in_child`); there
`parse_or_run_child` runs the job under `report`, which prints wall seconds, CPU seconds (user +
sys: far less distorted than wall time by other load on a shared machine), peak RSS and the job's
result as one JSON line. `generated_sources` makes the input of each size; `local_deployment`
a deployment with a seeded customers partition in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PARTITION = "2026-11-28"  # the customers partition `local_deployment` seeds


@contextmanager
def local_deployment() -> Iterator[Path]:
    """A fresh local deployment in a temporary folder, removed at the end: ER_DATA_DIR and
    DAGSTER_HOME point into it for the rest of this process and the commands it starts."""
    from er_assets.defs.instance import ensure_dagster_home

    with tempfile.TemporaryDirectory(prefix="er-bench-") as tmp:
        os.environ.update(ER_DATA_DIR=tmp, DAGSTER_HOME=f"{tmp}/dagster_home")
        ensure_dagster_home()
        yield Path(tmp)


def seed_customers(deployment: Path, records: int, partition: str = PARTITION) -> None:
    """`records` generated customers in the deployment's source table, on `partition`."""
    from er_assets.config import load_config
    from er_assets.ops.sample_data import seed_partition

    seed_partition(load_config().domain("customers"), partition, records, deployment / "warehouse.duckdb")


def parse_or_run_child(
    parser: argparse.ArgumentParser,
    kinds: Iterable[str],
    prepare: Callable[[str, Path, Path], Callable[[], Any]],
) -> argparse.Namespace | None:
    """The script's arguments; in a child, None once the job `prepare(kind, source, out)`
    returns has run under `report` (imports and set-up happen in `prepare`, untimed)."""
    parser.add_argument("--child", choices=list(kinds), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        return args
    report(prepare(args.child, args.source, args.out))
    return None


def generated_sources(
    sizes: Iterable[int],
    prefix: str,
    generate: Callable[[Path, int], None],
) -> Iterator[tuple[Path, int, Path]]:
    """(folder, size, file) for each size: `generate` writes `size` customers to the parquet
    file, in one temporary folder that is removed at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for n in sizes:
            source = Path(tmp) / f"customers-{n}.parquet"
            generate(source, n)
            yield Path(tmp), n, source


def report(job: Callable[[], Any]) -> None:
    """In the child: run `job` and print what it cost, and its result, as JSON."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = job()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak_mb, "result": result}))


def in_child(script: str, kind: str, source: Path, out: Path) -> dict:
    """In the parent: run `script`'s job `kind` in a child and return what `report` printed."""
    proc = subprocess.run(
        [sys.executable, script, "--child", kind, "--source", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{kind} run on {source.name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
