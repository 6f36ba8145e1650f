"""The Dagster code location: every domain's assets, checks, job and schedule.

Loaded by `dagster dev` / `dagster asset materialize -m er_assets.defs.definitions` and by the
bridge. The configuration file comes from ER_CONFIG (default: the shipped domains.yaml).
"""

from __future__ import annotations

import dagster as dg

from er_assets.config import Configuration, Domain, load_config
from er_assets.defs.assets import domain_assets
from er_assets.defs.sensors import build_sensors
from er_assets.resources.deployment import resources
from er_assets.stages import job_name

# One process per run: the multiprocess executor re-imports the code location for every step,
# several times slower here, and the stages are sequential anyway.
EXECUTOR = dg.in_process_executor


def _domain_job(domain: Domain) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        job_name(domain.name),
        selection=dg.AssetSelection.groups(domain.name) - dg.AssetSelection.keys([domain.name, "source"]),
        description=f"extract -> matched -> loaded for {domain.name} ({domain.schedule.cadence})",
        tags={"domain": domain.name},
    )


def build_definitions(config: Configuration) -> dg.Definitions:
    assets, jobs, schedules = [], [], []
    for domain in config.domains.values():
        assets.extend(domain_assets(domain, config.settings))
        job = _domain_job(domain)
        jobs.append(job)
        schedules.append(dg.build_schedule_from_partitioned_job(job, name=f"{domain.name}_schedule"))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=build_sensors(config),
        resources=resources(config),
        executor=EXECUTOR,
    )


def domain_job(config: Configuration, domain_name: str) -> dg.JobDefinition:
    """The one domain's job, built alone: what the bridge runs a stage with. The same job as
    the code location's (its assets, resources, executor and name), without the other
    domains, the schedules and the sensors, whose building every AutoSys job would pay for."""
    domain = config.domain(domain_name)
    definitions = dg.Definitions(
        assets=domain_assets(domain, config.settings),
        jobs=[_domain_job(domain)],
        resources=resources(config),
        executor=EXECUTOR,
    )
    return definitions.resolve_job_def(job_name(domain.name))


@dg.definitions
def defs() -> dg.Definitions:
    # Built when Dagster loads the location, not at import: the bridge imports
    # build_definitions with the configuration it was given, and a broken ER_CONFIG must not
    # stop it.
    return build_definitions(load_config())
