"""The Alembic environment of the job history. HistoryStore runs it on first use (alembic's
command API), handing over its connection in `config.attributes["connection"]` with its
transaction open and the schema lock held, so every revision runs in that one transaction
and two processes never both apply one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script

from er_assets.history.schema import schema_version


def record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    """Keep er_schema_version in step with each applied revision: releases before Alembic
    read it (and refuse a database newer than they are), as does `doctor`. A revision is
    named by its schema version's number; its docstring's first line describes it."""
    script = step.up_revision
    if step.is_upgrade and not step.is_stamp and isinstance(script, Script) and ctx.connection is not None:
        ctx.connection.execute(
            schema_version.insert().values(
                version=int(script.revision), description=script.doc, applied_at=dt.datetime.now(dt.timezone.utc)
            )
        )


context.configure(connection=context.config.attributes["connection"], on_version_apply=record)
with context.begin_transaction():
    context.run_migrations()
