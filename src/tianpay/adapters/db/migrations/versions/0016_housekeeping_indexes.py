"""Indexes for housekeeping: each purge finds its dead rows through an index instead of a table scan.

The sessions, SMS codes and rate-limit counters are purged by ``expires_at``, delivered events by
``(status, delivered_at)`` (adapters/db/housekeeping.py, docs/worker.md "Housekeeping").

Revision ID: 0016_housekeeping_indexes
Revises: 0015_console
"""

from __future__ import annotations

from alembic import op

revision = "0016_housekeeping_indexes"
down_revision = "0015_console"
branch_labels = None
depends_on = None

# (index, table, columns), as tables.py declares them.
INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_member_sessions_expires", "member_sessions", ["expires_at"]),
    ("ix_merchant_user_sessions_expires", "merchant_user_sessions", ["expires_at"]),
    ("ix_operator_sessions_expires", "operator_sessions", ["expires_at"]),
    ("ix_sms_codes_expires", "sms_codes", ["expires_at"]),
    ("ix_rate_limit_counters_expires", "rate_limit_counters", ["expires_at"]),
    ("ix_events_status_delivered", "events", ["status", "delivered_at"]),
)


def upgrade() -> None:
    # A plain CREATE INDEX, since `tianpay db upgrade` runs every revision inside one transaction and
    # PostgreSQL refuses CREATE INDEX CONCURRENTLY there. IF NOT EXISTS lets an operator build the index
    # of a large live table CONCURRENTLY by hand first (docs/deploy.md "Indexes on large live tables"),
    # and this revision then only records that it is there.
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table, if_exists=True)
