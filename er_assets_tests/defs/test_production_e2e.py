"""The production code path end to end for one domain and partition, without an account.

Snowflake is fakesnow with an external stage on a local folder laid out like the bucket,
Entity Resolution is the local emulator behind the real boto3 client, and CloudWatch (each
stage end's metrics) a moto server. The warehouse is `FakesnowWarehouse`: the production
`SnowflakeWarehouse` with only the unload statement (which fakesnow cannot run) performed by
writing the same SELECT's rows as parquet.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from er_assets.config import load_config
from er_assets.defs.assets import domain_assets
from er_assets.pipeline import checks
from er_assets.resources import metrics
from er_assets.resources.entity_resolution import LocalEntityResolution
from er_assets.resources.history import HistoryResource
from er_assets.resources.object_store import LocalObjectStore
from er_assets.resources.warehouses import snowflake as sf
from er_assets_tests.helpers import (
    ML_EXAMPLE,
    create_source,
    fake_snowflake,
    metric_values,
    sample_rows,
    warehouse,
)

PARTITION = "2024-03-05"
RECORDS = 400


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


class ObjectStoreWithoutLocalCopy(LocalObjectStore):
    """The local bucket folder with S3's contract: no local copy of record data, ever."""

    def local_copy(self, prefix_uri: str):
        raise NotImplementedError(f"local_copy({prefix_uri}) on the production path")


@pytest.mark.parametrize("config_path, name", [(None, "customers"), (ML_EXAMPLE, "customers_ml")])
def test_extract_matched_loaded_on_the_production_path(tmp_path, instance, config_path, name, cloudwatch, monkeypatch):
    monkeypatch.setenv("ER_DEPLOYMENT", "production")  # read by the stage ends' metrics only: resources are given
    config = load_config(config_path)
    domain = config.domain(name)
    objects = tmp_path / "objects"
    source = sample_rows(domain, PARTITION, RECORDS)
    neighbour = [{**r, "customer_id": f"N{i}", "load_date": dt.date(2024, 3, 6)} for i, r in enumerate(source[:50])]
    assets = domain_assets(domain, config.settings)
    stages = [dg.AssetKey([name, s]) for s in ("extract", "matched", "loaded")]

    with fake_snowflake(objects) as conn:
        create_source(conn, domain, source + neighbour)
        resources = {
            "warehouse": warehouse(objects),
            "object_store": ObjectStoreWithoutLocalCopy(root=str(objects)),
            "entity_resolution": LocalEntityResolution(
                region_name=config.settings.region,
                state_root=str(tmp_path / "emulator"),
                objects_root=str(objects),
                config_path=str(config.path),
            ),
            "history": HistoryResource(url=f"sqlite:///{tmp_path / 'history.db'}"),
        }

        def run(selection=stages):
            return dg.materialize(
                assets,
                partition_key=PARTITION,
                resources=resources,
                instance=instance,
                selection=selection,
                raise_on_error=False,
            )

        result = run()
        assert result.success
        assert checks.blocking_failures(result.get_asset_check_evaluations()) == []

        extract = result.asset_materializations_for_node(f"{name}__extract")[0].metadata
        matched = result.asset_materializations_for_node(f"{name}__matched")[0].metadata
        loaded = result.asset_materializations_for_node(f"{name}__loaded")[0].metadata
        assert extract["rows"].value == matched["input_records"].value == matched["output_rows"].value == RECORDS
        assert loaded["rows"].value == RECORDS
        assert 0 < matched["match_ids"].value < RECORDS
        assert matched["service_match_ids"].value == matched["match_ids"].value
        # The figures were counted in the warehouse: no record data came through this process.
        assert matched["orchestrator_bytes_read"].value == 0
        # Nor at extract (Snowflake unloads to S3), nor at load (Snowflake reads the header too).
        assert extract["orchestrator_bytes_read"].value == 0
        assert loaded["orchestrator_bytes_read"].value == 0

        if domain.ml_matching:  # ConfidenceLevel judged from the warehouse's figures
            assert 0.5 <= matched["mean_confidence"].value <= 1.0
        target = sf.ident(domain.target.table)
        cursor = conn.cursor()
        cursor.execute(
            f'SELECT COUNT(*), COUNT(DISTINCT "CUSTOMER_ID"), COUNT("MATCHID") FROM {target} '
            'WHERE "PARTITION_KEY" = %(p)s',
            {"p": PARTITION},
        )
        assert cursor.fetchone() == (RECORDS, RECORDS, RECORDS)

        # Re-running the load alone, then every stage, leaves one copy of the partition.
        reload = run([stages[-1]])
        again = run()
        assert reload.success and again.success
        cursor.execute(f"SELECT COUNT(*) FROM {target}")
        assert cursor.fetchone()[0] == RECORDS

    # Seven stage ends, each in CloudWatch: extract and matched twice, loaded three times.
    assert metrics.counters == metrics.Counters(published=7, failed=0, attempts=7)
    for stage, ends in (("extract", 2), ("matched", 2), ("loaded", 3)):
        assert sum(metric_values(cloudwatch, metrics.SUCCEEDED, Domain=name, Stage=stage)) == ends
        assert set(metric_values(cloudwatch, metrics.RECORDS, "Maximum", Domain=name, Stage=stage)) == {RECORDS}

    # The Snowflake password never reaches the event log.
    password = resources["warehouse"].password
    for run_result in (result, reload, again):
        logs = instance.all_logs(run_result.run_id)
        assert logs and not any(password in str(entry) for entry in logs)
