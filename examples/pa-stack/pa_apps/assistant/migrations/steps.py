"""Reusable migration steps; revision files compose these (no duplication).

Everything is expressed as DDL/SQL statements so that offline ``--sql``
generation shows exactly what runs online.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pa_apps.common.settings import lock_seconds

# Same rule as pa_apps.common.names.split_full_name: split on the first run
# of whitespace after trimming; a single word leaves last_name empty.
_SPLIT_NAMES = r"""
UPDATE users SET
    first_name = COALESCE(substring(t.trimmed FROM '^\S+'), ''),
    last_name  = COALESCE(substring(t.trimmed FROM '^\S+\s+(.*)$'), '')
FROM (SELECT id, regexp_replace(full_name, '^\s+|\s+$', '', 'g') AS trimmed FROM users) AS t
WHERE users.id = t.id
"""

_JOIN_NAMES = "UPDATE users SET full_name = btrim(first_name || ' ' || last_name)"


def split_user_names() -> None:
    op.add_column("users", sa.Column("first_name", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("last_name", sa.Text(), nullable=True))
    op.execute(_SPLIT_NAMES)
    op.alter_column("users", "first_name", nullable=False)
    op.alter_column("users", "last_name", nullable=False)
    op.drop_column("users", "full_name")


def join_user_names() -> None:
    op.add_column("users", sa.Column("full_name", sa.Text(), nullable=True))
    op.execute(_JOIN_NAMES)
    op.alter_column("users", "full_name", nullable=False)
    op.drop_column("users", "last_name")
    op.drop_column("users", "first_name")


def create_memory_tags() -> None:
    op.create_table(
        "memory_tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("memory_id", sa.Integer(), sa.ForeignKey("memories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.CheckConstraint("tag <> ''", name="ck_memory_tags_tag_not_empty"),
        sa.UniqueConstraint("memory_id", "tag", name="uq_memory_tags_memory_tag"),
    )


def drop_memory_tags() -> None:
    op.drop_table("memory_tags")


def create_message_time_index() -> None:
    op.create_index("ix_messages_conversation_created", "messages", ["conversation_id", "created_at"])


def drop_message_time_index() -> None:
    op.drop_index("ix_messages_conversation_created", table_name="messages")


def upgrade_110() -> None:
    split_user_names()
    create_memory_tags()
    create_message_time_index()


def downgrade_110() -> None:
    drop_message_time_index()
    drop_memory_tags()
    join_user_names()


def recreate_system_prompt() -> None:
    """The 1.1.0-lossy 'accident': drop + re-add the column as the model defines it.

    The schema ends up identical, every agent row survives, every prompt is lost.
    """
    op.drop_column("agents", "system_prompt")
    op.add_column("agents", sa.Column("system_prompt", sa.Text(), nullable=False, server_default=""))


def rewrite_messages_and_hold_lock() -> None:
    """The 1.1.0-locking hazard: a full rewrite of messages (ACCESS EXCLUSIVE),
    then PA_LOCK_SECONDS of sleep inside the same migration transaction."""
    op.add_column(
        "messages",
        sa.Column("search_key", sa.Text(), nullable=True, server_default=sa.text("md5(random()::text)")),
    )
    op.execute(f"SELECT pg_sleep({lock_seconds():g})")


def drop_search_key() -> None:
    op.drop_column("messages", "search_key")
