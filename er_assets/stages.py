"""The three stages of every domain, under the two names each one goes by.

Dagster knows them as assets (`<domain>/extract`, `<domain>/matched`, `<domain>/loaded`), and
the job history's `stage` column and the check names use the same words. AutoSys knows them
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
