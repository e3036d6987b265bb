"""Foundation: merchants and keys, the ledger, API replay and idempotency, the outbox, payments.

The schema is written out here (generated once from adapters/db/tables.py, then frozen) so that a
later change to tables.py never changes what this revision does; new columns get new revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The database's own guard on the ledger: an entry row may only be inserted once its postings
# (written first, under a deferred foreign key) number two or more and sum to zero per currency;
# no posting may be added to an entry that exists; nothing in the ledger is ever updated or deleted.
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER journal_entries_balanced BEFORE INSERT ON journal_entries
    WHEN (SELECT count(*) FROM postings WHERE entry_id = NEW.id) < 2
      OR EXISTS (SELECT 1 FROM postings WHERE entry_id = NEW.id
                 GROUP BY currency HAVING sum(amount_minor) <> 0)
    BEGIN SELECT RAISE(ABORT, 'ledger: unbalanced journal entry'); END
    """,
    """
    CREATE TRIGGER postings_entry_closed BEFORE INSERT ON postings
    WHEN EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id)
    BEGIN SELECT RAISE(ABORT, 'ledger: journal entry is closed'); END
    """,
    "CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings "
    "BEGIN SELECT RAISE(ABORT, 'ledger: postings are append-only'); END",
    "CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings "
    "BEGIN SELECT RAISE(ABORT, 'ledger: postings are append-only'); END",
    "CREATE TRIGGER journal_entries_no_update BEFORE UPDATE ON journal_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger: journal entries are append-only'); END",
    "CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger: journal entries are append-only'); END",
]

POSTGRESQL_TRIGGERS = [
    """
    CREATE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT count(*) FROM postings WHERE entry_id = NEW.id) < 2
         OR EXISTS (SELECT 1 FROM postings WHERE entry_id = NEW.id
                    GROUP BY currency HAVING sum(amount_minor) <> 0) THEN
        RAISE EXCEPTION 'ledger: unbalanced journal entry %', NEW.id USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE FUNCTION ledger_entry_closed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM journal_entries WHERE id = NEW.entry_id) THEN
        RAISE EXCEPTION 'ledger: journal entry % is closed', NEW.entry_id USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'ledger: % is append-only', TG_TABLE_NAME USING ERRCODE = 'check_violation';
    END $$
    """,
    "CREATE TRIGGER journal_entries_balanced BEFORE INSERT ON journal_entries "
    "FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()",
    "CREATE TRIGGER postings_entry_closed BEFORE INSERT ON postings "
    "FOR EACH ROW EXECUTE FUNCTION ledger_entry_closed()",
    "CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings "
    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
    "CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries "
    "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
]


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "scope", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=80), nullable=False),
        sa.Column("source_id", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_mode", sa.String(length=10), nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "request_replays",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_request_replays")),
    )
    with op.batch_alter_table("request_replays", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_replays_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=80), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_events_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_events_merchant_created", ["merchant_id", "created_at"], unique=False)

    op.create_table(
        "fee_plans",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("rate_bps", sa.Integer(), nullable=False),
        sa.Column("minimum_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_fee_plans_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("merchant_id", "method", name=op.f("pk_fee_plans")),
    )
    op.create_table(
        "merchant_keys",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("algorithm", sa.String(length=40), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_keys_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_merchant_keys")),
    )
    with op.batch_alter_table("merchant_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merchant_keys_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("out_trade_no", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("notify_url", sa.Text(), nullable=True),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("succeeded_attempt_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_payments_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("merchant_id", "out_trade_no", name="uq_payments_merchant_out_trade_no"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_merchant_created", ["merchant_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_payments_status_expires", ["status", "expires_at"], unique=False)

    op.create_table(
        "postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_postings_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_postings_entry_id_journal_entries"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_account_id_id", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_postings_entry_id", ["entry_id"], unique=False)

    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bank_reference", sa.String(length=80), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_payment_attempts_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_attempts")),
    )
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_payment_attempts_payment", ["payment_id", "created_at"], unique=False)
        batch_op.create_index("ix_payment_attempts_status_updated", ["status", "updated_at"], unique=False)

    op.create_table(
        "payment_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("attempt_id", sa.String(length=40), nullable=True),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_transitions_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_transitions")),
    )
    with op.batch_alter_table("payment_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_payment_transitions_payment", ["payment_id", "id"], unique=False)

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_webhook_attempts_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.UniqueConstraint("event_id", "attempt_no", name="uq_webhook_attempts_event_attempt"),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_attempts_event_id"), ["event_id"], unique=False)

    op.create_table(
        "late_success_refunds",
        sa.Column("attempt_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bank_reference", sa.String(length=80), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_late_success_refunds_attempt_id_payment_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_late_success_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("pk_late_success_refunds")),
    )
    with op.batch_alter_table("late_success_refunds", schema=None) as batch_op:
        batch_op.create_index("ix_late_success_refunds_status", ["status", "created_at"], unique=False)
    for statement in POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in ("ledger_entry_balanced", "ledger_entry_closed", "ledger_append_only"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
    with op.batch_alter_table("late_success_refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_late_success_refunds_status")

    op.drop_table("late_success_refunds")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_event_id"))

    op.drop_table("webhook_attempts")
    with op.batch_alter_table("payment_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_transitions_payment")

    op.drop_table("payment_transitions")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_attempts_status_updated")
        batch_op.drop_index("ix_payment_attempts_payment")

    op.drop_table("payment_attempts")
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index("ix_postings_entry_id")
        batch_op.drop_index("ix_postings_account_id_id")

    op.drop_table("postings")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_status_expires")
        batch_op.drop_index("ix_payments_merchant_created")

    op.drop_table("payments")
    with op.batch_alter_table("merchant_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_keys_merchant_id"))

    op.drop_table("merchant_keys")
    op.drop_table("fee_plans")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_merchant_created")
        batch_op.drop_index("ix_events_due")

    op.drop_table("events")
    with op.batch_alter_table("request_replays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_replays_expires_at"))

    op.drop_table("request_replays")
    op.drop_table("merchants")
    op.drop_table("ledger_accounts")
    op.drop_table("journal_entries")
    op.drop_table("idempotency_records")
