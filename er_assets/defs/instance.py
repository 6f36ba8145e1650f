"""The Dagster instance of a local deployment: DAGSTER_HOME under the data folder, its
dagster.yaml, and its storage created once however many bridges start at the same moment."""

from __future__ import annotations

import os
from pathlib import Path

from er_assets.environment import local_paths

LOCAL_DAGSTER_YAML = """\
# Written by er-pipelines for the local deployment. Production uses a Postgres-backed
# instance instead (see docs/production.md).
telemetry:
  enabled: false
concurrency:
  pools:
    # AWS Entity Resolution runs one matching job per region: the matching pool holds one slot.
    default_limit: 1
"""


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the local data folder unless the environment already does."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(local_paths()["dagster_home"])))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        # Whole or not at all: a bridge starting at the same moment must never read half of it.
        partial = home / f".dagster.yaml.{os.getpid()}"
        partial.write_text(LOCAL_DAGSTER_YAML)
        os.replace(partial, settings)
    return home


def initialise_instance(home: Path) -> None:
    """Create the Dagster instance's storage in `home` once, before any run uses it.

    Two bridges starting on a fresh DAGSTER_HOME at once would both create its tables, and
    one fails ("table runs already exists"): the first use is serialised by a lock file in
    the folder; later ones see the marker file and skip it."""
    ready = home / ".er-initialised"
    if ready.exists():
        return
    import fcntl

    import dagster as dg

    with open(home / ".er-init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.get_runs(limit=1)  # builds the run, event-log and schedule storage
            ready.touch()
