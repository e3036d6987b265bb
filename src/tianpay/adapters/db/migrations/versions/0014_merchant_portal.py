"""The merchant portal: portal users (argon2id passwords, optional TOTP, lockout) and their sessions.

Revision ID: 0014_merchant_portal
Revises: 0013_statistics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_merchant_portal"
down_revision = "0013_statistics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret_sealed", sa.Text(), nullable=True),
        sa.Column("is_totp_enabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_users_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_users")),
        sa.UniqueConstraint("username", name=op.f("uq_merchant_users_username")),
    )
    op.create_index("ix_merchant_users_merchant", "merchant_users", ["merchant_id"])
    op.create_table(
        "merchant_user_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("is_verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["merchant_users.id"], name=op.f("fk_merchant_user_sessions_user_id_merchant_users")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_merchant_user_sessions")),
    )
    op.create_index("ix_merchant_user_sessions_user", "merchant_user_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_merchant_user_sessions_user", table_name="merchant_user_sessions")
    op.drop_table("merchant_user_sessions")
    op.drop_index("ix_merchant_users_merchant", table_name="merchant_users")
    op.drop_table("merchant_users")
