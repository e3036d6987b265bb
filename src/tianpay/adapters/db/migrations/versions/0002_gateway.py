"""Gateway mode: the re-query schedule on payment attempts, and operator alerts.

``payment_attempts`` gains ``next_query_at``, ``query_count`` and ``last_queried_at`` (the re-query
job's schedule and claim); ``operator_alerts`` holds what an operator must look at, once per
``dedupe_key``. Written out by hand, like 0001, so later edits to tables.py never change it.

Revision ID: 0002_gateway
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_gateway"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_query_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("query_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_queried_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_payment_attempts_status_next_query", ["status", "next_query_at"], unique=False)
    op.create_table(
        "operator_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=60), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_alerts")),
        sa.UniqueConstraint("dedupe_key", name="uq_operator_alerts_dedupe_key"),
    )
    with op.batch_alter_table("operator_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_operator_alerts_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("operator_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_operator_alerts_status_created")
    op.drop_table("operator_alerts")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_attempts_status_next_query")
        batch_op.drop_column("last_queried_at")
        batch_op.drop_column("query_count")
        batch_op.drop_column("next_query_at")
