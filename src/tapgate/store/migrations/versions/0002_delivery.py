"""Add delivery provider settings and per-device challenge deliveries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_providers",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("kind"),
    )
    op.create_table(
        "challenge_deliveries",
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_via", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", "device_id"),
    )


def downgrade() -> None:
    op.drop_table("challenge_deliveries")
    op.drop_table("delivery_providers")
