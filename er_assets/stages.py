"""The three stages of every domain, under the two names each one goes by, and the job that
holds them.

Dagster knows them as assets (`<domain>/extract`, `<domain>/matched`, `<domain>/loaded`) of
the domain's job `ER_<domain>`, and the job history's `stage` and `job_name` columns and the
check names use the same words. AutoSys knows them
as the bridge's `run` stages and the command jobs of a box (`extract`, `process`, `load`), so
an operator's JIL reads like the operations guide it replaces.
"""

from __future__ import annotations

ASSETS = ("extract", "matched", "loaded")  # in the order they run
FINAL = ASSETS[-1]  # the stage whose success delivers the partition
JOBS = ("extract", "process", "load")  # the bridge's stages; one AutoSys command job each
# What `autosys-bridge run DOMAIN STAGE` materialises.
RUNS = {**{job: (asset,) for job, asset in zip(JOBS, ASSETS)}, "all": ASSETS}


def run_tag(assets: set[str]) -> str:
    """The bridge's name for a set of stages: `extract`, `process`, `load`, `all`, or a
    `+`-joined subset such as `process+load` (a UI selection of two assets)."""
    if assets >= set(ASSETS):
        return "all"
    return "+".join(job for job, asset in zip(JOBS, ASSETS) if asset in assets)


def command_job(job_prefix: str, job: str) -> str:
    """The AutoSys command job of a domain that runs the bridge's stage `job` (one of JOBS)."""
    return f"{job_prefix}_{job.upper()}"


def box_job(job_prefix: str) -> str:
    """The AutoSys box that holds a domain's command jobs."""
    return f"{job_prefix}_BOX"


def job_name(domain_name: str) -> str:
    """`ER_<domain>`: every run of the domain's stages belongs to this job, whoever starts it.

    The bridge and the demo run it by name. The UI materialises selected assets in the first
    job, in the asset's sorted job names, that holds them all (`getCommonJob` in ui-core's
    LaunchAssetExecutionButton.tsx; `AssetNodeSnap.job_names` is sorted in dagster's
    external_data.py). The implicit `__ASSET_JOB` holds every asset; an upper-case first letter
    sorts before its underscore, so the UI, and its backfills, pick the domain's job.
    """
    return f"ER_{domain_name}"
