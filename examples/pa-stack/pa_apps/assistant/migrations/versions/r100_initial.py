"""Initial assistant schema (release 1.0.0).

Revision ID: r100
"""
import sqlalchemy as sa
from alembic import op

revision = "r100"
down_revision = None
branch_labels = None
depends_on = None


def _id():
    return sa.Column("id", sa.Integer(), primary_key=True)


def _created_at():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _fk(name, target):
    return sa.Column(name, sa.Integer(), sa.ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=False)


def upgrade():
    op.create_table(
        "users",
        _id(),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("position('@' in email) > 1", name="ck_users_email_format"),
    )
    op.create_table(
        "agents",
        _id(),
        _fk("user_id", "users"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False, server_default=""),
        _created_at(),
        sa.CheckConstraint("name <> ''", name="ck_agents_name_not_empty"),
    )
    op.create_index("ix_agents_user_id", "agents", ["user_id"])
    op.create_table(
        "memories",
        _id(),
        _fk("agent_id", "agents"),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        _created_at(),
        sa.UniqueConstraint("agent_id", "key", name="uq_memories_agent_key"),
        sa.CheckConstraint("key <> ''", name="ck_memories_key_not_empty"),
    )
    op.create_table(
        "conversations",
        _id(),
        _fk("agent_id", "agents"),
        sa.Column("title", sa.Text(), nullable=False),
        _created_at(),
    )
    op.create_index("ix_conversations_agent_id", "conversations", ["agent_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        _fk("conversation_id", "conversations"),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("attachment_path", sa.Text(), nullable=True),
        _created_at(),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])


def downgrade():
    for table in ("messages", "conversations", "memories", "agents", "users"):
        op.drop_table(table)
