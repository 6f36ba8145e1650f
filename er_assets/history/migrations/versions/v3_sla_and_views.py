"""SLA table and dashboard views

Released schema version 3; never edit (see revision 1). The views are SQL text: they differ
between the databases only in a few expressions, and SQLAlchemy has no shorter way to say
them. Their columns and meaning are the dashboards' contract (er_assets/history/schema.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "3"
down_revision = "2"

FINAL_STAGE = "loaded"  # the stage that delivers a partition
FAILURES = "'DQ_FAILED', 'FAILED', 'TIMEOUT'"

# The UTC day of a timestamp, seconds between two, rounding, on each database.
SQLITE = {
    "day": lambda column: f"date({column})",
    "seconds": lambda start, end: f"((julianday({end}) - julianday({start})) * 86400.0)",
    "round": lambda expression, digits: f"ROUND({expression}, {digits})",
}
POSTGRESQL = {
    "day": lambda column: f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)",
    "seconds": lambda start, end: f"EXTRACT(EPOCH FROM ({end} - {start}))",
    # Postgres rounds to digits only NUMERIC, not DOUBLE PRECISION.
    "round": lambda expression, digits: f"ROUND(CAST({expression} AS NUMERIC), {digits})",
}


def views(day, seconds, round):
    # Succeeded stages only in durations and volumes: a stage that failed after 3 s says
    # nothing about how long it takes. A partition is delivered when its final stage first
    # succeeds; its clock starts when any stage of it first started, so re-runs after a
    # failure count against the SLA.
    elapsed = seconds("p.started_at", "p.delivered_at")
    return [
        f"""
CREATE VIEW er_v_success_rate AS
SELECT domain, day, runs, succeeded, failed, cancelled, running,
       {round("100.0 * succeeded / NULLIF(runs - running, 0)", 1)} AS success_rate_pct
FROM (
    SELECT domain, {day("start_time")} AS day, COUNT(*) AS runs,
           SUM(CASE WHEN status = 'SUCCEEDED' THEN 1 ELSE 0 END) AS succeeded,
           SUM(CASE WHEN status IN ({FAILURES}) THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN status = 'CANCELLED' THEN 1 ELSE 0 END) AS cancelled,
           SUM(CASE WHEN status = 'RUNNING' THEN 1 ELSE 0 END) AS running
    FROM er_job_history
    GROUP BY domain, {day("start_time")}
) per_day""",
        f"""
CREATE VIEW er_v_stage_duration AS
SELECT domain, stage, {day("start_time")} AS day, COUNT(*) AS runs,
       {round("AVG(duration_seconds)", 1)} AS avg_seconds,
       MIN(duration_seconds) AS min_seconds,
       MAX(duration_seconds) AS max_seconds
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, {day("start_time")}""",
        f"""
CREATE VIEW er_v_sla_compliance AS
SELECT p.domain, p.partition_key, p.process_date, p.started_at, p.delivered_at,
       {round(f"{elapsed} / 60.0", 1)} AS elapsed_minutes,
       s.sla_minutes,
       CASE WHEN s.sla_minutes IS NULL THEN NULL
            WHEN p.delivered_at IS NOT NULL AND {elapsed} <= s.sla_minutes * 60 THEN 'MET'
            WHEN p.delivered_at IS NOT NULL THEN 'LATE'
            WHEN {seconds("p.started_at", "CURRENT_TIMESTAMP")} > s.sla_minutes * 60 THEN 'MISSED'
            ELSE 'PENDING' END AS sla_status
FROM (
    SELECT domain, partition_key, MIN(process_date) AS process_date,
           MIN(start_time) AS started_at,
           MIN(CASE WHEN stage = '{FINAL_STAGE}' AND status = 'SUCCEEDED' THEN end_time END) AS delivered_at
    FROM er_job_history
    GROUP BY domain, partition_key
) p
LEFT JOIN er_sla s ON s.domain = p.domain""",
        f"""
CREATE VIEW er_v_record_volume AS
SELECT domain, stage, {day("start_time")} AS day, COUNT(*) AS runs,
       SUM(record_count) AS records
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, {day("start_time")}""",
        f"""
CREATE VIEW er_v_error_frequency AS
SELECT domain, stage, status, error_key, {day("start_time")} AS day,
       COUNT(*) AS occurrences,
       MAX(end_time) AS last_seen,
       MAX(error_message) AS example
FROM er_job_history
WHERE status IN ({FAILURES}) AND error_key IS NOT NULL
GROUP BY domain, stage, status, error_key, {day("start_time")}""",
    ]


def upgrade() -> None:
    op.create_table(
        "er_sla",
        sa.Column("domain", sa.Text(), primary_key=True),
        sa.Column("sla_minutes", sa.Integer(), sa.CheckConstraint("sla_minutes > 0"), nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False),
    )
    for view in views(**(POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE)):
        op.execute(view)
