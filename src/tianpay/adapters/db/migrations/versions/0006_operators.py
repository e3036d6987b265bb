"""Operators: the platform's staff accounts for the console (argon2id passwords, roles).

Revision ID: 0006_operators
Revises: 0005_card_bindings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_operators"
down_revision = "0005_card_bindings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("is_disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_operators")),
    )


def downgrade() -> None:
    op.drop_table("operators")
