"""What one AutoSys box run works on, pinned by its first job so that late restarts keep it.

Every job of one box run carries the box's run number in `$AUTORUN` (AutoSys sets it, with
`$AUTOSERV`, the instance name, in each job's environment; a restart inside the run keeps it).
The first bridge job of a box run records what the run works on -- for a domain box the
partition, for ER_ON_DEMAND the domain and date read from the globals -- in the Dagster
instance's key-value store, under instance, box and run number. Every later job of that run
reads the record instead of deciding again: a PROCESS restarted by hand after the next
day's 03:00 still processes the partition its EXTRACT extracted, and an on-demand LOAD
loads the domain its EXTRACT extracted even if someone has set the globals again since.

The Dagster instance is the one shared store every bridge process already uses (Postgres in
production), so no extra state is kept anywhere. One small row per box run; docs/jil.md
describes how an operator reads or overrides it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

# Dagster has no public key-value store: the private one is reached through dagster_private,
# which imports dagster only when called, so the bridge's start-up stays free of it.
from er_assets.dagster_private import read_instance_value, write_instance_value

KEY_PREFIX = "er/autosys-box-run"


class BoxRunError(Exception):
    """The Dagster instance holding the pins cannot be read or written."""


def run_number() -> str | None:
    """The AutoSys run number of this job, or None when AutoSys did not start it."""
    value = os.environ.get("AUTORUN", "").strip()
    return value if value.isdigit() else None


def key(box: str, run: str) -> str:
    return f"{KEY_PREFIX}/{os.environ.get('AUTOSERV', '-').strip() or '-'}/{box}/{run}"


def pinned(box: str, decide: Callable[[], dict], record: bool = True) -> dict:
    """What this box run works on: the record the run's first job made, else `decide()`.

    Outside AutoSys (no `$AUTORUN`) this is just `decide()`. With `record=False` (dry runs)
    nothing is written.
    """
    run = run_number()
    if run is None:
        return decide()
    name = key(box, run)
    try:
        with _instance() as instance:
            stored = read_instance_value(instance, name)
            if stored is not None:
                value = json.loads(stored)
                _log(f"box run {run} of {box}: working on {_show(value)}, recorded by its first job")
                return value
            value = decide()
            if record:
                # Jobs of one box run start one after the other: read-then-write cannot race.
                write_instance_value(instance, name, json.dumps(value, sort_keys=True))
                _log(f"box run {run} of {box}: recorded {_show(value)} for the rest of the run")
            return value
    except BoxRunError:
        raise
    except Exception as exc:  # the storage's own errors: unreachable Postgres, locked SQLite
        raise BoxRunError(
            f"cannot read the box-run record {name} from the Dagster instance: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def _instance():
    from er_assets.defs.instance import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    return dg.DagsterInstance.get()


def _show(value: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))


def _log(message: str) -> None:
    # The runner's log format: these lines land in the same std_err_file.
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} autosys-bridge: {message}", file=sys.stderr, flush=True)
