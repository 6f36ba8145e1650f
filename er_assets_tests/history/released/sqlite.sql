-- The job history schema as the releases before Alembic created it (sqlite): the DDL that
-- er_assets/history/schema.py (commit ff065eb) rendered, version by version. Test data,
-- frozen: it builds the databases those releases left behind. Never edit.

-- bootstrap
CREATE TABLE IF NOT EXISTS er_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
);

-- version 1: job history table
CREATE TABLE er_job_history (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    domain TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    process_date DATE NOT NULL,
    triggered_by TEXT NOT NULL,
    job_name TEXT,
    autosys_job_name TEXT,
    start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP,
    status TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'DQ_FAILED', 'CANCELLED', 'TIMEOUT')),
    record_count BIGINT,
    duration_seconds DOUBLE PRECISION,
    exit_code INTEGER,
    error_message TEXT,
    error_key TEXT,
    metadata TEXT CHECK (json_valid(metadata)) NOT NULL DEFAULT '{}',
    CONSTRAINT er_job_history_run_stage UNIQUE (run_id, stage)
);
CREATE INDEX er_job_history_domain_start ON er_job_history (domain, start_time);
CREATE INDEX er_job_history_partition ON er_job_history (domain, partition_key);

-- version 2: notification log: one mail per run and status
CREATE TABLE er_notification_log (
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    domain TEXT NOT NULL,
    recipients TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, status)
);

-- version 3: SLA table and dashboard views
CREATE TABLE er_sla (
    domain TEXT PRIMARY KEY,
    sla_minutes INTEGER NOT NULL CHECK (sla_minutes > 0),
    updated_at TIMESTAMP NOT NULL
);
CREATE VIEW er_v_success_rate AS
SELECT domain, day, runs, succeeded, failed, cancelled, running,
       ROUND(100.0 * succeeded / NULLIF(runs - running, 0), 1) AS success_rate_pct
FROM (
    SELECT domain, date(start_time) AS day, COUNT(*) AS runs,
           SUM(CASE WHEN status = 'SUCCEEDED' THEN 1 ELSE 0 END) AS succeeded,
           SUM(CASE WHEN status IN ('DQ_FAILED', 'FAILED', 'TIMEOUT') THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN status = 'CANCELLED' THEN 1 ELSE 0 END) AS cancelled,
           SUM(CASE WHEN status = 'RUNNING' THEN 1 ELSE 0 END) AS running
    FROM er_job_history
    GROUP BY domain, date(start_time)
) per_day;
CREATE VIEW er_v_stage_duration AS
SELECT domain, stage, date(start_time) AS day, COUNT(*) AS runs,
       ROUND(AVG(duration_seconds), 1) AS avg_seconds,
       MIN(duration_seconds) AS min_seconds,
       MAX(duration_seconds) AS max_seconds
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, date(start_time);
CREATE VIEW er_v_sla_compliance AS
SELECT p.domain, p.partition_key, p.process_date, p.started_at, p.delivered_at,
       ROUND(((julianday(p.delivered_at) - julianday(p.started_at)) * 86400.0) / 60.0, 1) AS elapsed_minutes,
       s.sla_minutes,
       CASE WHEN s.sla_minutes IS NULL THEN NULL
            WHEN p.delivered_at IS NOT NULL AND ((julianday(p.delivered_at) - julianday(p.started_at)) * 86400.0) <= s.sla_minutes * 60 THEN 'MET'
            WHEN p.delivered_at IS NOT NULL THEN 'LATE'
            WHEN ((julianday(CURRENT_TIMESTAMP) - julianday(p.started_at)) * 86400.0) > s.sla_minutes * 60 THEN 'MISSED'
            ELSE 'PENDING' END AS sla_status
FROM (
    SELECT domain, partition_key, MIN(process_date) AS process_date,
           MIN(start_time) AS started_at,
           MIN(CASE WHEN stage = 'loaded' AND status = 'SUCCEEDED' THEN end_time END) AS delivered_at
    FROM er_job_history
    GROUP BY domain, partition_key
) p
LEFT JOIN er_sla s ON s.domain = p.domain;
CREATE VIEW er_v_record_volume AS
SELECT domain, stage, date(start_time) AS day, COUNT(*) AS runs,
       SUM(record_count) AS records
FROM er_job_history
WHERE status = 'SUCCEEDED'
GROUP BY domain, stage, date(start_time);
CREATE VIEW er_v_error_frequency AS
SELECT domain, stage, status, error_key, date(start_time) AS day,
       COUNT(*) AS occurrences,
       MAX(end_time) AS last_seen,
       MAX(error_message) AS example
FROM er_job_history
WHERE status IN ('DQ_FAILED', 'FAILED', 'TIMEOUT') AND error_key IS NOT NULL
GROUP BY domain, stage, status, error_key, date(start_time);

-- version 4: attempt number: a step retried within its run reopens the stage's row
ALTER TABLE er_job_history ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;

-- version 5: history_id: the row id, so job_id means only the matching job (in metadata)
ALTER TABLE er_job_history RENAME COLUMN job_id TO history_id;

-- version 6: late partitions: found late while they were late, mailed once
CREATE TABLE er_late_partition (
    domain TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL,
    noticed_at TIMESTAMP NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (domain, partition_key)
);
