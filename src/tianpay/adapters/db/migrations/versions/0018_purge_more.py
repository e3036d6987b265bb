"""Indexes for the purges of idempotency records and of the SMS outbox, both by ``created_at``.

Housekeeping deletes idempotency records older than their retention and outbox messages older than
a day (adapters/db/housekeeping.py, docs/worker.md "Housekeeping"); each finds them through one of
these instead of reading the whole table.

Revision ID: 0018_purge_more
Revises: 0017_exception_record_index
"""

from __future__ import annotations

from alembic import op

revision = "0018_purge_more"
down_revision = "0017_exception_record_index"
branch_labels = None
depends_on = None

# (index, table, columns), as tables.py declares them.
INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_idempotency_records_created", "idempotency_records", ["created_at"]),
    ("ix_sms_outbox_created", "sms_outbox", ["created_at"]),
)


def upgrade() -> None:
    # IF NOT EXISTS for the same reason as 0016: idempotency_records gains a row with every merchant
    # write, so in production its index is built CONCURRENTLY by hand first (docs/deploy.md).
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table, if_exists=True)
