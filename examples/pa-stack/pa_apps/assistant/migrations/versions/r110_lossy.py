"""Release 1.1.0-lossy: 1.1.0 plus an 'accidental' recreate of agents.system_prompt.

Revision ID: r110_lossy
Revises: r100
"""
from pa_apps.assistant.migrations import steps

revision = "r110_lossy"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade():
    steps.upgrade_110()
    steps.recreate_system_prompt()


def downgrade():
    # The prompts are gone for good; the column shape is unchanged.
    steps.downgrade_110()
