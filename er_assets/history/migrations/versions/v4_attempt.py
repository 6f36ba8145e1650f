"""attempt number: a step retried within its run reopens the stage's row

Released schema version 4; never edit (see revision 1).
"""

import sqlalchemy as sa
from alembic import op

revision = "4"
down_revision = "3"


def upgrade() -> None:
    op.add_column("er_job_history", sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1")))
