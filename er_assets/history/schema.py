"""The job history schema as an ordered list of migrations, and the dashboard views.

A database records the last migration it ran in `er_schema_version`; a store applies the
ones after it on first use, so an upgrade needs no manual DDL. Never edit a released
migration: append a new one.

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

from collections.abc import Callable

from er_assets import stages
from er_assets.history.dialect import Dialect
from er_assets.history.model import FAILURES, Status

STATUS_LIST = ", ".join(f"'{s.value}'" for s in Status)  # constants, not user input
FAILURE_LIST = ", ".join(f"'{s.value}'" for s in sorted(FAILURES))

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS er_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {timestamp} NOT NULL
)"""

# As released in migration 1; migration 5 renames its row id `job_id` to `history_id`.
JOB_HISTORY = f"""
CREATE TABLE er_job_history (
    job_id {{id}},
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    domain TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    process_date DATE NOT NULL,
    triggered_by TEXT NOT NULL,
    job_name TEXT,
    autosys_job_name TEXT,
    start_time {{timestamp}} NOT NULL,
    end_time {{timestamp}},
    status TEXT NOT NULL CHECK (status IN ({STATUS_LIST})),
    record_count BIGINT,
    duration_seconds DOUBLE PRECISION,
    exit_code INTEGER,
    error_message TEXT,
    error_key TEXT,
    metadata {{json}} NOT NULL DEFAULT '{{{{}}}}',
    CONSTRAINT er_job_history_run_stage UNIQUE (run_id, stage)
)"""

NOTIFICATION_LOG = """
CREATE TABLE er_notification_log (
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    domain TEXT NOT NULL,
    recipients TEXT NOT NULL,
    sent_at {timestamp} NOT NULL,
    PRIMARY KEY (run_id, status)
)"""

SLA = """
CREATE TABLE er_sla (
    domain TEXT PRIMARY KEY,
    sla_minutes INTEGER NOT NULL CHECK (sla_minutes > 0),
    updated_at {timestamp} NOT NULL
)"""


def _success_rate(d: Dialect) -> str:
    return f"""
CREATE VIEW er_v_success_rate AS
SELECT domain, day, runs, succeeded, failed, cancelled, running,
       {d.round("100.0 * succeeded / NULLIF(runs - running, 0)", 1)} AS success_rate_pct
FROM (
    SELECT domain, {d.day("start_time")} AS day, COUNT(*) AS runs,
           SUM(CASE WHEN status = 'SUCCEEDED' THEN 1 ELSE 0 END) AS succeeded,
           SUM(CASE WHEN status IN ({FAILURE_LIST}) THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN status = 'CANCELLED' THEN 1 ELSE 0 END) AS cancelled,
           SUM(CASE WHEN status = 'RUNNING' THEN 1 ELSE 0 END) AS running
    FROM er_job_history
    GROUP BY domain, {d.day("start_time")}
) per_day"""


def _stage_duration(d: Dialect) -> str:
    # Succeeded stages only: a stage that failed after 3 s says nothing about how long it takes.
    return f"""
CREATE VIEW er_v_stage_duration AS
SELECT domain, stage, {d.day("start_time")} AS day, COUNT(*) AS runs,
       {d.round("AVG(duration_seconds)", 1)} AS avg_seconds,
       MIN(duration_seconds) AS min_seconds,
       MAX(duration_seconds) AS max_seconds
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, {d.day("start_time")}"""


def _sla_compliance(d: Dialect) -> str:
    # A partition is delivered when its final stage first succeeds; the clock starts when any
    # stage of it first started, so re-runs after a failure count against the SLA.
    elapsed = d.seconds_between("p.started_at", "p.delivered_at")
    waited = d.seconds_between("p.started_at", d.now())
    return f"""
CREATE VIEW er_v_sla_compliance AS
SELECT p.domain, p.partition_key, p.process_date, p.started_at, p.delivered_at,
       {d.round(f"{elapsed} / 60.0", 1)} AS elapsed_minutes,
       s.sla_minutes,
       CASE WHEN s.sla_minutes IS NULL THEN NULL
            WHEN p.delivered_at IS NOT NULL AND {elapsed} <= s.sla_minutes * 60 THEN 'MET'
            WHEN p.delivered_at IS NOT NULL THEN 'LATE'
            WHEN {waited} > s.sla_minutes * 60 THEN 'MISSED'
            ELSE 'PENDING' END AS sla_status
FROM (
    SELECT domain, partition_key, MIN(process_date) AS process_date,
           MIN(start_time) AS started_at,
           MIN(CASE WHEN stage = '{stages.FINAL}' AND status = 'SUCCEEDED' THEN end_time END) AS delivered_at
    FROM er_job_history
    GROUP BY domain, partition_key
) p
LEFT JOIN er_sla s ON s.domain = p.domain"""


def _record_volume(d: Dialect) -> str:
    return f"""
CREATE VIEW er_v_record_volume AS
SELECT domain, stage, {d.day("start_time")} AS day, COUNT(*) AS runs,
       SUM(record_count) AS records
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, {d.day("start_time")}"""


def _error_frequency(d: Dialect) -> str:
    return f"""
CREATE VIEW er_v_error_frequency AS
SELECT domain, stage, status, error_key, {d.day("start_time")} AS day,
       COUNT(*) AS occurrences,
       MAX(end_time) AS last_seen,
       MAX(error_message) AS example
FROM er_job_history
WHERE status IN ({FAILURE_LIST}) AND error_key IS NOT NULL
GROUP BY domain, stage, status, error_key, {d.day("start_time")}"""


# One row per partition found late (its final stage not succeeded `sla_minutes` after its
# schedule fired): written once, by the watcher that mails it, so the row is the mail's claim.
LATE_PARTITION = """
CREATE TABLE er_late_partition (
    domain TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    due_at {timestamp} NOT NULL,
    state TEXT NOT NULL,
    noticed_at {timestamp} NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (domain, partition_key)
)"""

VIEWS = (
    "er_v_success_rate",
    "er_v_stage_duration",
    "er_v_sla_compliance",
    "er_v_record_volume",
    "er_v_error_frequency",
)

# (version, description, statements). Statements are DDL templates or functions of the
# dialect; never parameterised, never built from input.
Migration = tuple[int, str, tuple[str | Callable[[Dialect], str], ...]]
MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "job history table",
        (
            JOB_HISTORY,
            "CREATE INDEX er_job_history_domain_start ON er_job_history (domain, start_time)",
            "CREATE INDEX er_job_history_partition ON er_job_history (domain, partition_key)",
        ),
    ),
    (2, "notification log: one mail per run and status", (NOTIFICATION_LOG,)),
    (
        3,
        "SLA table and dashboard views",
        (SLA, _success_rate, _stage_duration, _sla_compliance, _record_volume, _error_frequency),
    ),
    (
        4,
        "attempt number: a step retried within its run reopens the stage's row",
        ("ALTER TABLE er_job_history ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",),
    ),
    (
        5,
        "history_id: the row id, so job_id means only the matching job (in metadata)",
        # The same statement on both: SQLite (3.25+) and PostgreSQL rename in place, keeping
        # every row, its id and the id's generator (AUTOINCREMENT's counter, the identity's
        # sequence, whose internal name still says job_id).
        ("ALTER TABLE er_job_history RENAME COLUMN job_id TO history_id",),
    ),
    (6, "late partitions: found late while they were late, mailed once", (LATE_PARTITION,)),
)
LATEST = MIGRATIONS[-1][0]


def statements(migration: Migration, dialect: Dialect) -> list[str]:
    return [s(dialect) if callable(s) else s for s in migration[2]]
