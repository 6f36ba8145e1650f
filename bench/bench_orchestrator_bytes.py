"""Benchmark: record data read by the orchestrator (Dagster) process, per stage.

Runs extract -> matched -> loaded for one customers partition on the production code path
(Snowflake through fakesnow with its stage on a local folder, the Entity Resolution emulator
behind boto3; the statements fakesnow cannot run are replaced as in the tests) and prints each
stage's `orchestrator_bytes_read` metadata next to the size of the data it moved. In
production no stage reads any of it: Snowflake reads the output, its header included, over the stage.

    .venv/bin/python bench/bench_orchestrator_bytes.py [--records 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTITION = "2024-03-05"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import dagster as dg

    from er_assets.config import load_config
    from er_assets.defs.assets import domain_assets
    from er_assets.resources.entity_resolution import LocalEntityResolution
    from er_assets.resources.history import HistoryResource
    from er_assets.resources.object_store import LocalObjectStore
    from er_assets_tests.helpers import create_source, fake_snowflake, sample_rows, warehouse

    config = load_config()
    domain = config.domain("customers")
    with tempfile.TemporaryDirectory(prefix="er-bench-bytes-") as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        objects = Path(tmp) / "objects"
        with fake_snowflake(objects) as conn:
            create_source(conn, domain, sample_rows(domain, PARTITION, args.records))
            resources = {
                "warehouse": warehouse(objects),
                "object_store": LocalObjectStore(root=str(objects)),
                "entity_resolution": LocalEntityResolution(
                    region_name=config.settings.region,
                    state_root=f"{tmp}/emulator",
                    objects_root=str(objects),
                    config_path=str(config.path),
                ),
                "history": HistoryResource(url=f"sqlite:///{tmp}/history.db"),
            }
            result = dg.materialize(
                domain_assets(domain, config.settings), partition_key=PARTITION, resources=resources, instance=instance
            )
        moved = {"extract": objects.rglob("extract/**/*.parquet"), "matched": objects.rglob("output/**/*.csv")}
        sizes = {stage: sum(p.stat().st_size for p in files) for stage, files in moved.items()}
        sizes["loaded"] = sizes["matched"]
        print(f"customers partition of {args.records:,} records, production code path")
        print(f"  {'stage':<8} {'data moved':>12} {'read by orchestrator':>21}")
        for stage in ("extract", "matched", "loaded"):
            metadata = result.asset_materializations_for_node(f"customers__{stage}")[0].metadata
            print(f"  {stage:<8} {sizes[stage]:>10,} B {metadata['orchestrator_bytes_read'].value:>19,} B")


if __name__ == "__main__":
    main()
