"""history_id: the row id, so job_id means only the matching job (in metadata)

Released schema version 5; never edit (see revision 1).
"""

from alembic import op

revision = "5"
down_revision = "4"


def upgrade() -> None:
    # SQLite (3.25+) and PostgreSQL rename in place, keeping every row, its id and the id's
    # generator (AUTOINCREMENT's counter, the identity's sequence, whose internal name still
    # says job_id).
    op.alter_column("er_job_history", "job_id", new_column_name="history_id")
