"""The code location's identity, and the tags that put every run of a domain on its job's page.

The code location has one name; workspace.yaml (make dev) and pyproject.toml's [tool.dagster]
say so too. Every run of a domain's stages belongs to its job (`stages.job_name`), whoever
starts it."""

from __future__ import annotations

from er_assets import stages
from er_assets.dagster_private import job_page_tag
from er_assets.pipeline.recording import trigger

# The code location's one name: workspace.yaml (make dev) and pyproject.toml's [tool.dagster] say so too.
CODE_LOCATION = "er_assets"


def location_tags() -> dict[str, str]:
    """The tag the UI's job pages filter runs by: `.dagster/repository`, `<repository>@<location>`.

    Dagster sets it only on runs launched from a code location (`DagsterRun.tags_for_storage`
    in dagster/_core/storage/dagster_run.py; the UI's PipelineRunsFeedRoot.tsx filters on it);
    in-process runs of the bridge and the demo carry it too, so they are on the job's page.
    Dagster 1.13 exports neither the tag nor the name of a `Definitions` object's repository:
    er_assets/dagster_private.py reads both from Dagster, so the value stays Dagster's.
    """
    return job_page_tag(CODE_LOCATION)


def complete_run_tags(context, domain: str) -> None:
    """Give a run the tags the bridge sets (domain, stage, process_date, er/trigger), whatever
    started it: the UI, a schedule, a backfill; and give an in-process run (bridge, demo) the
    code location's tag, which the job page filters by. Tags already set are kept, so a bridge
    run keeps its own. Added by the run's first step, as Dagster lets a run's tags grow
    (`DagsterInstance.add_run_tags`); the job's static `domain` tag is there from the start."""
    tags = context.run.tags
    selection = context.run.asset_selection  # None: the whole job
    chosen = {key.path[-1] for key in selection if key.path[0] == domain} if selection else set(stages.ASSETS)
    wanted = {
        "domain": domain,
        "stage": stages.run_tag(chosen),
        "process_date": context.partition_key,
        "er/trigger": trigger(tags)[0].split(":")[0],
        **location_tags(),
    }
    missing = {key: value for key, value in wanted.items() if key not in tags}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)
