"""Release 1.2.0: a harmless nullable column (memories.summary).

Revision ID: r120
Revises: r110
"""
import sqlalchemy as sa
from alembic import op

revision = "r120"
down_revision = "r110"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("memories", sa.Column("summary", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("memories", "summary")
