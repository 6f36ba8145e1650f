"""Where this deployment is and what it is, from the environment: the one deployment switch
(ER_DEPLOYMENT), the local data folder (ER_DATA_DIR) and the job history's database
(ER_HISTORY_URL).

`local` (the default) needs no account: a DuckDB file, a folder laid out like the bucket and
the Entity Resolution emulator, all under ER_DATA_DIR. `production` uses Snowflake, S3 and
AWS, configured from the environment (see README). The assets never branch on this; the
resources do (`er_assets.resources.deployment`). Standard library only: the bridge's CLI and
the job history read it without importing Dagster.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def history_url(env=os.environ) -> str:
    """The job history's database: ER_HISTORY_URL; locally a SQLite file in the data folder by
    default. Production must name its database: a silent local file would lose the history."""
    url = env.get(HISTORY_URL_ENV)
    if url:
        return url
    if env.get(DEPLOYMENT_ENV, "local") == "production":
        raise ValueError(f"{HISTORY_URL_ENV} must name the job history database in production")
    return f"sqlite:///{local_paths()['history']}"
