"""The operator console: the audit log, operator sessions and lockout, and the bank switches.

Revision ID: 0015_console
Revises: 0014_merchant_portal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_console"
down_revision = "0014_merchant_portal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("operator", sa.String(length=60), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("subject_type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_created", "audit_log", ["created_at", "id"])
    op.create_index("ix_audit_log_operator_created", "audit_log", ["operator", "created_at"])
    op.create_table(
        "operator_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["username"], ["operators.username"], name=op.f("fk_operator_sessions_username_operators")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_operator_sessions")),
    )
    op.create_index("ix_operator_sessions_username", "operator_sessions", ["username"])
    op.create_table(
        "operator_logins",
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["username"], ["operators.username"], name=op.f("fk_operator_logins_username_operators")
        ),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_operator_logins")),
    )
    op.create_table(
        "channel_settings",
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("cost_bps", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=60), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bank", name=op.f("pk_channel_settings")),
    )


def downgrade() -> None:
    op.drop_table("channel_settings")
    op.drop_table("operator_logins")
    op.drop_index("ix_operator_sessions_username", table_name="operator_sessions")
    op.drop_table("operator_sessions")
    op.drop_index("ix_audit_log_operator_created", table_name="audit_log")
    op.drop_index("ix_audit_log_created", table_name="audit_log")
    op.drop_table("audit_log")
