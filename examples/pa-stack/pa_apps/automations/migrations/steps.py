"""Reusable migration steps of the automations database."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_BACKFILL_DURATION = """
UPDATE executions
SET duration_ms = GREATEST(0, round(extract(epoch FROM finished_at - started_at) * 1000))::integer
WHERE finished_at IS NOT NULL
"""


def upgrade_110() -> None:
    op.add_column("executions", sa.Column("duration_ms", sa.Integer(), nullable=True))
    op.execute(_BACKFILL_DURATION)
    op.create_index("ix_executions_workflow_started", "executions", ["workflow_id", "started_at"])


def downgrade_110() -> None:
    op.drop_index("ix_executions_workflow_started", table_name="executions")
    op.drop_column("executions", "duration_ms")
