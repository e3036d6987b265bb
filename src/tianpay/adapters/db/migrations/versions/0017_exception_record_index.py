"""An index on reconciliation exceptions by the record they name.

Every success a payment, refund or payout service records now asks whether the record's statement
line was booked to suspense and its follow-up closed (services/suspense_follow_ups.py): that look-up
is by ``record_id`` and runs on the hot path of every bank success, so it must not scan the table.

Revision ID: 0017_exception_record_index
Revises: 0016_housekeeping_indexes
"""

from __future__ import annotations

from alembic import op

revision = "0017_exception_record_index"
down_revision = "0016_housekeeping_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS for the same reason as 0016: an operator may build it CONCURRENTLY by hand first.
    op.create_index(
        "ix_reconciliation_exceptions_record", "reconciliation_exceptions", ["record_id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_exceptions_record", table_name="reconciliation_exceptions", if_exists=True)
