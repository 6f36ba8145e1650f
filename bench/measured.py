"""A job measured in a child process of its own, so peak RSS (ru_maxrss) is that job's alone.

A benchmark script runs itself with `--child KIND --source PATH --out PATH` (`add_child_arguments`,
`in_child`); the child runs the job under `report`, which prints wall seconds, CPU seconds (user +
sys: far less distorted than wall time by other load on a shared machine), peak RSS and the job's
result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def add_child_arguments(parser: argparse.ArgumentParser, kinds: Iterable[str]) -> None:
    """The hidden options a script's child is started with."""
    parser.add_argument("--child", choices=list(kinds), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)


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
        capture_output=True, text=True, check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{kind} run on {source.name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
