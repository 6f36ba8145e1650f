"""The Dagster code location: every domain's assets, checks, job and schedule.

Loaded by `dagster dev` / `dagster asset materialize -m er_assets.defs.definitions` and by the
bridge. The configuration file comes from ER_CONFIG (default: the shipped domains.yaml).
"""

from __future__ import annotations

import dagster as dg

from er_assets.defs.assets import domain_assets
from er_assets.config import Configuration, load_config
from er_assets.resources.deployment import resources
from er_assets.defs.sensors import build_sensors


# The code location's one name: workspace.yaml (make dev) and pyproject.toml's [tool.dagster] say so too.
CODE_LOCATION = "er_assets"


def location_tags() -> dict[str, str]:
    """The tag the UI's job pages filter runs by: `.dagster/repository`, `<repository>@<location>`.

    Dagster sets it only on runs launched from a code location (`DagsterRun.tags_for_storage`
    in dagster/_core/storage/dagster_run.py; the UI's PipelineRunsFeedRoot.tsx filters on it);
    in-process runs of the bridge and the demo carry it too, so they are on the job's page.
    Both names are private: `dagster/__init__.py` of 1.13 exports neither the tag nor the
    name of a `Definitions` object's repository, and importing them keeps the value Dagster's.
    """
    from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    return {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{CODE_LOCATION}"}


def job_name(domain_name: str) -> str:
    """`ER_<domain>`: every run of the domain's stages belongs to this job, whoever starts it.

    The bridge and the demo run it by name. The UI materialises selected assets in the first
    job, in the asset's sorted job names, that holds them all (`getCommonJob` in ui-core's
    LaunchAssetExecutionButton.tsx; `AssetNodeSnap.job_names` is sorted in dagster's
    external_data.py). The implicit `__ASSET_JOB` holds every asset; an upper-case first letter
    sorts before its underscore, so the UI, and its backfills, pick the domain's job.
    """
    return f"ER_{domain_name}"


def build_definitions(config: Configuration) -> dg.Definitions:
    assets, jobs, schedules = [], [], []
    for domain in config.domains.values():
        assets.extend(domain_assets(domain, config.settings))
        job = dg.define_asset_job(
            job_name(domain.name),
            selection=dg.AssetSelection.groups(domain.name) - dg.AssetSelection.keys([domain.name, "source"]),
            description=f"extract -> matched -> loaded for {domain.name} ({domain.schedule.cadence})",
            tags={"domain": domain.name},
        )
        jobs.append(job)
        schedules.append(dg.build_schedule_from_partitioned_job(job, name=f"{domain.name}_schedule"))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=build_sensors(config),
        resources=resources(config),
        # One process per run: the multiprocess executor re-imports the code location for
        # every step, several times slower here, and the stages are sequential anyway.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Built when Dagster loads the location, not at import: the bridge imports
    # build_definitions with the configuration it was given, and a broken ER_CONFIG must not
    # stop it.
    return build_definitions(load_config())
