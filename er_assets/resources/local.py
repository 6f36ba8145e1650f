"""The local deployment's resources: a DuckDB file, a folder laid out like the bucket, and
the Entity Resolution emulator, all under the data folder (`er_assets.environment`)."""

from __future__ import annotations

from er_assets.config import Configuration
from er_assets.environment import local_paths


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
