"""Which services the stages talk to, chosen by one setting: ER_DEPLOYMENT.

`local` (the default) needs no account: a DuckDB file, a folder laid out like the bucket and
the Entity Resolution emulator, all under ER_DATA_DIR. `production` uses Snowflake, S3 and
AWS, configured from the environment (see README). The assets never branch on this.
"""

from __future__ import annotations

import os
from pathlib import Path

from er_assets.config import Configuration

DEPLOYMENT_ENV = "ER_DEPLOYMENT"
DATA_DIR_ENV = "ER_DATA_DIR"
DEPLOYMENTS = ("local", "production")
HISTORY_URL_ENV = "ER_HISTORY_URL"


def deployment() -> str:
    name = os.environ.get(DEPLOYMENT_ENV, "local")
    if name not in DEPLOYMENTS:
        raise ValueError(f"{DEPLOYMENT_ENV}={name!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return name


def data_dir() -> Path:
    """The local deployment's folder: ER_DATA_DIR, else .local/ in the project checkout."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".local"
    return Path.home() / ".local" / "share" / "er-pipelines"


def local_paths(root: Path | None = None) -> dict[str, Path]:
    root = root or data_dir()
    return {
        "root": root,
        "warehouse": root / "warehouse.duckdb",
        "objects": root / "s3",
        "emulator": root / "emulator",
        "dagster_home": root / "dagster_home",
        "history": root / "history.db",
    }


def local_resources(config: Configuration) -> dict:
    from er_assets.resources.entity_resolution import LocalEntityResolution
    from er_assets.resources.object_store import LocalObjectStore
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    paths = local_paths()
    objects = str(paths["objects"])
    return {
        "warehouse": DuckDBWarehouse(path=str(paths["warehouse"]), objects_root=objects),
        "object_store": LocalObjectStore(root=objects),
        "entity_resolution": LocalEntityResolution(
            region_name=config.settings.region,
            state_root=str(paths["emulator"]),
            objects_root=objects,
            config_path=str(config.path),
        ),
    }


def production_resources(config: Configuration) -> dict:
    from er_assets.resources.production import production_resources as build

    return build(config)


def history_url(env=os.environ) -> str:
    """The job history's database: ER_HISTORY_URL; locally a SQLite file in the data folder by
    default. Production must name its database: a silent local file would lose the history."""
    url = env.get(HISTORY_URL_ENV)
    if url:
        return url
    if env.get(DEPLOYMENT_ENV, "local") == "production":
        raise ValueError(f"{HISTORY_URL_ENV} must name the job history database in production")
    return f"sqlite:///{local_paths()['history']}"


def history_resource(config: Configuration):
    import dagster as dg

    from er_assets.pipeline.recording import HistoryResource

    sla = {name: domain.schedule.sla_minutes for name, domain in config.domains.items()}
    # A URL from the environment stays an EnvVar, resolved when a run starts: loading the
    # definitions needs no secret, and none is written into the job snapshots Dagster stores.
    named = deployment() == "production" or os.environ.get(HISTORY_URL_ENV)
    url = dg.EnvVar(HISTORY_URL_ENV) if named else history_url()
    return HistoryResource(url=url, sla_minutes=sla)


def resources(config: Configuration) -> dict:
    chosen = local_resources(config) if deployment() == "local" else production_resources(config)
    return {**chosen, "history": history_resource(config)}


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
