"""Initial automations schema (release 1.0.0).

Revision ID: r100
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "r100"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("webhook_token", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("webhook_token", name="uq_workflows_webhook_token"),
        sa.CheckConstraint("name <> ''", name="ck_workflows_name_not_empty"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "workflow_id", sa.Integer(), sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.Text(), nullable=False, server_default="running"),
        sa.Column("input", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("output", JSONB(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'success', 'error')", name="ck_executions_status"),
        sa.CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at", name="ck_executions_finished_after_start"
        ),
    )
    op.create_index("ix_executions_workflow_id", "executions", ["workflow_id"])


def downgrade():
    op.drop_table("executions")
    op.drop_table("workflows")
