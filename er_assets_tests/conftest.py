"""Shared fixtures: every test that touches the local deployment gets its own data folder
and Dagster instance, so tests never see a developer's .local/ or each other's state."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from er_assets.config import DEFAULT_CONFIG_PATH, load_config
from er_assets.ops.sample_data import seed_partition


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """A fresh local deployment: ER_DATA_DIR and DAGSTER_HOME under tmp_path."""
    data = tmp_path / "data"
    monkeypatch.setenv("ER_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.delenv("ER_DEPLOYMENT", raising=False)
    monkeypatch.delenv("ER_CONFIG", raising=False)
    monkeypatch.delenv("AUTO_JOB_NAME", raising=False)
    monkeypatch.delenv("AUTORUN", raising=False)
    from er_assets.defs.instance import ensure_dagster_home

    ensure_dagster_home()
    return data


@pytest.fixture
def config():
    return load_config()


@pytest.fixture
def instance(local_env):
    import dagster as dg

    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as inst:
        yield inst


def run_stages(config, instance, domain: str, stages, partition: str, run_config=None):
    """Materialise `stages` of `domain` for one partition in this process; a matched stage
    polls every second (the emulator's jobs take about that)."""
    import dagster as dg

    from er_assets.defs.definitions import build_definitions

    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    if run_config is None and "matched" in stages:
        run_config = {"ops": {f"{domain}__matched": {"config": {"check_interval": 1}}}}
    return job.execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False, run_config=run_config,
        asset_selection=[dg.AssetKey([domain, s]) for s in stages],
    )


def write_config(tmp_path: Path, mutate) -> Path:
    """A copy of the shipped configuration changed by `mutate(raw_dict)`."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    mutate(raw)
    path = tmp_path / "domains.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def seed(domain, partition: str, records: int, data_dir: Path) -> None:
    seed_partition(domain, partition, records, data_dir / "warehouse.duckdb")

