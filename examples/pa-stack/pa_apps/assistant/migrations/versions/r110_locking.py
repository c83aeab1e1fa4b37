"""Release 1.1.0-locking: 1.1.0 plus a messages rewrite holding ACCESS EXCLUSIVE.

Revision ID: r110_locking
Revises: r100
"""
from pa_apps.assistant.migrations import steps

revision = "r110_locking"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade():
    steps.upgrade_110()
    steps.rewrite_messages_and_hold_lock()


def downgrade():
    steps.drop_search_key()
    steps.downgrade_110()
