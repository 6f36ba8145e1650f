"""The job history's tables as the code reads and writes them, and the dashboard views.

The migrations build them (migrations/versions/, one Alembic revision per schema version, run
on first use); this MetaData describes what the latest revision leaves, and a test checks the
two agree. Never edit a released revision: add one, and raise LATEST.

The views are the dashboard's contract (Grafana, any SQL tool, and report.py read them):
    er_v_success_rate      domain, day: runs, succeeded, failed, cancelled, running, success_rate_pct
    er_v_stage_duration    domain, stage, day: runs, avg/min/max_seconds of succeeded stages
    er_v_sla_compliance    domain, partition_key: started_at, delivered_at, elapsed_minutes,
                           sla_minutes, sla_status (MET, LATE, MISSED, PENDING; NULL without an SLA)
    er_v_record_volume     domain, stage, day: runs, records of succeeded stages
    er_v_error_frequency   domain, stage, status, error_key, day: occurrences, last_seen, example
`day` is the UTC calendar day on which the stage started.

SLAs live in the `er_sla` table (domain -> minutes) rather than in the view text: the
pipeline keeps the table in step with the configuration on start-up (HistoryStore.sync_sla),
so changing an SLA needs no DDL privileges, keeps dashboards that read the view untouched,
and is itself a row a dashboard can show next to the compliance figures.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    DOUBLE_PRECISION,
    BigInteger,
    Column,
    Date,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

from er_assets.history.dialect import JSON, Timestamp

MIGRATIONS = Path(__file__).with_name("migrations")  # the Alembic environment, shipped as package data
LATEST = 6  # the schema version (Alembic revision) this code writes: the head of MIGRATIONS

VIEWS = (
    "er_v_success_rate",
    "er_v_stage_duration",
    "er_v_sla_compliance",
    "er_v_record_volume",
    "er_v_error_frequency",
)

metadata = MetaData()

# The migrations applied, one row each: Alembic's alembic_version holds only the last, and
# releases before Alembic (and `doctor`, which never migrates) read the version from here.
schema_version = Table(
    "er_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Timestamp, nullable=False),
)

job_history = Table(
    "er_job_history",
    metadata,
    Column("history_id", BigInteger().with_variant(Integer, "sqlite"), Identity(always=True), primary_key=True),
    Column("run_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("domain", Text, nullable=False),
    Column("partition_key", Text, nullable=False),
    Column("process_date", Date, nullable=False),
    Column("triggered_by", Text, nullable=False),
    Column("job_name", Text),
    Column("autosys_job_name", Text),
    Column("start_time", Timestamp, nullable=False),
    Column("end_time", Timestamp),
    Column("status", Text, nullable=False),
    Column("record_count", BigInteger),
    Column("duration_seconds", DOUBLE_PRECISION),
    Column("exit_code", Integer),
    Column("error_message", Text),
    Column("error_key", Text),
    Column("metadata", JSON, nullable=False),
    Column("attempt", Integer, nullable=False),
    UniqueConstraint("run_id", "stage", name="er_job_history_run_stage"),
    Index("er_job_history_domain_start", "domain", "start_time"),
    Index("er_job_history_partition", "domain", "partition_key"),
    sqlite_autoincrement=True,
)

notification_log = Table(
    "er_notification_log",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("domain", Text, nullable=False),
    Column("recipients", Text, nullable=False),
    Column("sent_at", Timestamp, nullable=False),
)

sla = Table(
    "er_sla",
    metadata,
    Column("domain", Text, primary_key=True),
    Column("sla_minutes", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# One row per partition found late (its final stage not succeeded `sla_minutes` after its
# schedule fired): written once, by the watcher that mails it, so the row is the mail's claim.
late_partition = Table(
    "er_late_partition",
    metadata,
    Column("domain", Text, primary_key=True),
    Column("partition_key", Text, primary_key=True),
    Column("due_at", Timestamp, nullable=False),
    Column("state", Text, nullable=False),
    Column("noticed_at", Timestamp, nullable=False),
    Column("recipients", Text, nullable=False),
)
