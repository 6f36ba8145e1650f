"""job history table

Released schema version 1. A released revision never changes: a database that ran it never
runs it again. It names every value it uses (the statuses of its CHECK) rather than
importing them, so a change elsewhere cannot change it either.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "1"
down_revision = None

TIMESTAMP = sa.TIMESTAMP(timezone=True)  # TIMESTAMPTZ; SQLite keeps ISO-8601 UTC text in it
STATUSES = "'RUNNING', 'SUCCEEDED', 'FAILED', 'DQ_FAILED', 'CANCELLED', 'TIMEOUT'"


def upgrade() -> None:
    # Releases before Alembic created this outside their migrations, before the first one.
    op.create_table(
        "er_schema_version",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("applied_at", TIMESTAMP, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "er_job_history",
        # Ids never reused: AUTOINCREMENT on SQLite, an identity on PostgreSQL.
        sa.Column(
            "job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(always=True), primary_key=True
        ),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("partition_key", sa.Text(), nullable=False),
        sa.Column("process_date", sa.Date(), nullable=False),
        sa.Column("triggered_by", sa.Text(), nullable=False),
        sa.Column("job_name", sa.Text()),
        sa.Column("autosys_job_name", sa.Text()),
        sa.Column("start_time", TIMESTAMP, nullable=False),
        sa.Column("end_time", TIMESTAMP),
        sa.Column("status", sa.Text(), sa.CheckConstraint(f"status IN ({STATUSES})"), nullable=False),
        sa.Column("record_count", sa.BigInteger()),
        sa.Column("duration_seconds", sa.DOUBLE_PRECISION()),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_key", sa.Text()),
        sa.Column(
            "metadata", sa.Text().with_variant(JSONB(), "postgresql"), nullable=False, server_default=sa.text("'{}'")
        ),
        sa.CheckConstraint("json_valid(metadata)").ddl_if(dialect="sqlite"),
        sa.UniqueConstraint("run_id", "stage", name="er_job_history_run_stage"),
        sqlite_autoincrement=True,
    )
    op.create_index("er_job_history_domain_start", "er_job_history", ["domain", "start_time"])
    op.create_index("er_job_history_partition", "er_job_history", ["domain", "partition_key"])
