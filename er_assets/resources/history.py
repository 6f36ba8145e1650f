"""The job history as a Dagster resource: where it lives, and the SLA each domain's runs are
held to (the configuration is its source of truth; the history's er_sla table follows it)."""

from __future__ import annotations

import dagster as dg

from er_assets.history import HistoryStore


class HistoryResource(dg.ConfigurableResource):
    """Where the job history lives: `sqlite:///file.db` locally, `postgresql://...` in production."""

    url: str
    sla_minutes: dict[str, int] = {}  # noqa: RUF012  # a pydantic field: each instance gets its own copy

    def store(self) -> HistoryStore:
        store = HistoryStore.from_url(self.url)
        # The configuration is the SLA's source of truth; the history's er_sla table follows it.
        if self.sla_minutes:
            store.sync_sla(self.sla_minutes)
        return store
