"""Release 1.1.0-locking: identical to r110 here (the lock is in the assistant database).

Revision ID: r110_locking
Revises: r100
"""
from pa_apps.automations.migrations import steps

revision = "r110_locking"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade():
    steps.upgrade_110()


def downgrade():
    steps.downgrade_110()
