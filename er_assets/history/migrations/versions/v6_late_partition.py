"""late partitions: found late while they were late, mailed once

Released schema version 6; never edit (see revision 1).
"""

import sqlalchemy as sa
from alembic import op

revision = "6"
down_revision = "5"


def upgrade() -> None:
    op.create_table(
        "er_late_partition",
        sa.Column("domain", sa.Text(), primary_key=True),
        sa.Column("partition_key", sa.Text(), primary_key=True),
        sa.Column("due_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("noticed_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
    )
