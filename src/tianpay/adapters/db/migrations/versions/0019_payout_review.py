"""Payout review (人工审核): a per-merchant threshold above which payouts wait for an operator.

The held payouts themselves need no new column: ``pending_review`` is one more value of
``payouts.status`` (the status index serves the review queue), the reviewer and the reason are in the
transition trail and the audit log, and a refusal uses the failure code and message columns. Before a
downgrade, approve or reject every held payout: the older code does not know the status.

Revision ID: 0019_payout_review
Revises: 0018_purge_more
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_payout_review"
down_revision = "0018_purge_more"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payout_review_thresholds",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("threshold_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=60), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payout_review_thresholds_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_payout_review_thresholds")),
    )


def downgrade() -> None:
    op.drop_table("payout_review_thresholds")
