"""Add login requests, so a retransmission that reaches another node joins the first login.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_requests",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("number", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("login_requests", schema=None) as batch_op:
        batch_op.create_index("ix_login_requests_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("login_requests")
