"""Monthly debit schedules on mandates, their per-period bills, and the per-period run claims.

Revision ID: 0009_debit_schedules
Revises: 0008_mandates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_debit_schedules"
down_revision = "0008_mandates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "debit_schedules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("day_of_month", sa.Integer(), nullable=False),
        sa.Column("amount_kind", sa.String(length=10), nullable=False),
        sa.Column("fixed_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("first_period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_debit_schedules_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["mandate_id"], ["mandates.id"], name=op.f("fk_debit_schedules_mandate_id_mandates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debit_schedules")),
    )
    op.create_index("ix_debit_schedules_status_day", "debit_schedules", ["status", "day_of_month"])
    op.create_index("ix_debit_schedules_mandate_id", "debit_schedules", ["mandate_id"])
    op.create_table(
        "debit_schedule_bills",
        sa.Column("schedule_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["debit_schedules.id"],
                                name=op.f("fk_debit_schedule_bills_schedule_id_debit_schedules")),
        sa.PrimaryKeyConstraint("schedule_id", "period", name=op.f("pk_debit_schedule_bills")),
    )
    op.create_table(
        "debit_schedule_runs",
        sa.Column("schedule_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("claimed_by", sa.String(length=120), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["debit_schedules.id"],
                                name=op.f("fk_debit_schedule_runs_schedule_id_debit_schedules")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"],
                                name=op.f("fk_debit_schedule_runs_payment_id_payments")),
        sa.PrimaryKeyConstraint("schedule_id", "period", name=op.f("pk_debit_schedule_runs")),
    )


def downgrade() -> None:
    op.drop_table("debit_schedule_runs")
    op.drop_table("debit_schedule_bills")
    op.drop_index("ix_debit_schedules_mandate_id", table_name="debit_schedules")
    op.drop_index("ix_debit_schedules_status_day", table_name="debit_schedules")
    op.drop_table("debit_schedules")
