"""Statistics: daily aggregates per merchant, the aggregation job's watermarks, worker job runs, and the
indexes the merchant's search and the statistics need (docs/statistics.md).

Revision ID: 0013_statistics
Revises: 0012_payouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_statistics"
down_revision = "0012_payouts"
branch_labels = None
depends_on = None

COUNTERS = (
    "payment_count",
    "succeeded_count",
    "failed_count",
    "closed_count",
    "succeeded_minor",
    "fee_minor",
    "refund_count",
    "refunded_minor",
    "fee_returned_minor",
)


def upgrade() -> None:
    op.create_table(
        "daily_payment_stats",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS),
        sa.PrimaryKeyConstraint(
            "merchant_id", "business_date", "method", "bank", "currency", name=op.f("pk_daily_payment_stats")
        ),
    )
    op.create_index("ix_daily_payment_stats_date", "daily_payment_stats", ["business_date"])
    watermarks = op.create_table(
        "statistics_watermarks",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("settled_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_id", sa.BigInteger(), nullable=False),
        sa.Column("pending_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_statistics_watermarks")),
    )
    # Both rows exist from the start, so the job can lock them without racing to create them. A
    # database upgraded with payments already in it starts at 0: the first runs aggregate everything.
    op.bulk_insert(
        watermarks,
        [
            {"source": "payment_transitions", "settled_id": 0, "seen_id": 0, "pending_count": 0, "updated_at": None},
            {"source": "refund_transitions", "settled_id": 0, "seen_id": 0, "pending_count": 0, "updated_at": None},
        ],
    )
    op.create_table(
        "worker_job_runs",
        sa.Column("job", sa.String(length=60), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_worker_job_runs")),
    )
    op.create_index("ix_refunds_succeeded_merchant", "refunds", ["succeeded_at", "merchant_id"])
    op.create_index(
        "ix_payments_merchant_status_created", "payments", ["merchant_id", "status", "created_at", "id"]
    )
    op.create_index("ix_payment_attempts_created", "payment_attempts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_payment_attempts_created", table_name="payment_attempts")
    op.drop_index("ix_payments_merchant_status_created", table_name="payments")
    op.drop_index("ix_refunds_succeeded_merchant", table_name="refunds")
    op.drop_table("worker_job_runs")
    op.drop_table("statistics_watermarks")
    op.drop_index("ix_daily_payment_stats_date", table_name="daily_payment_stats")
    op.drop_table("daily_payment_stats")
