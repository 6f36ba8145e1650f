"""Job history: one row per Dagster run and stage, on SQLite or PostgreSQL, with the views
that dashboards and the HTML report read."""

from er_assets.history.dialect import HistoryError
from er_assets.history.model import FAILURES, JobRun, LatePartition, Status, error_key
from er_assets.history.store import HistoryStore

__all__ = ["FAILURES", "HistoryError", "HistoryStore", "JobRun", "LatePartition", "Status", "error_key"]
