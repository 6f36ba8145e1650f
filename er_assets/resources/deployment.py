"""Which services the stages talk to: the local set or the production set, chosen by
ER_DEPLOYMENT (`er_assets.environment`). The assets never branch on this."""

from __future__ import annotations

import os

from er_assets.config import Configuration
from er_assets.environment import HISTORY_URL_ENV, deployment, history_url


def history_resource(config: Configuration):
    import dagster as dg

    from er_assets.resources.history import HistoryResource

    sla = {name: domain.schedule.sla_minutes for name, domain in config.domains.items()}
    # A URL from the environment stays an EnvVar, resolved when a run starts: loading the
    # definitions needs no secret, and none is written into the job snapshots Dagster stores.
    named = deployment() == "production" or os.environ.get(HISTORY_URL_ENV)
    url = dg.EnvVar(HISTORY_URL_ENV) if named else history_url()
    return HistoryResource(url=url, sla_minutes=sla)


def resources(config: Configuration) -> dict:
    from er_assets.resources.local import local_resources
    from er_assets.resources.production import production_resources

    chosen = local_resources(config) if deployment() == "local" else production_resources(config)
    return {**chosen, "history": history_resource(config)}
