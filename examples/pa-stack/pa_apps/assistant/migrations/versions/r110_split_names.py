"""Release 1.1.0: split users.full_name, memory tags, message time index.

Revision ID: r110
Revises: r100
"""
from pa_apps.assistant.migrations import steps

revision = "r110"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade():
    steps.upgrade_110()


def downgrade():
    steps.downgrade_110()
