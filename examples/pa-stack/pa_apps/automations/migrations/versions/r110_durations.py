"""Release 1.1.0: executions.duration_ms (backfilled) + (workflow_id, started_at) index.

Revision ID: r110
Revises: r100
"""
from pa_apps.automations.migrations import steps

revision = "r110"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade():
    steps.upgrade_110()


def downgrade():
    steps.downgrade_110()
