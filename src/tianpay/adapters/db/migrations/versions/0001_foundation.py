"""Foundation: merchants, keys, fee plans, the ledger, API replay and idempotency, the outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from tianpay.adapters.db.tables import (
    events,
    fee_plans,
    idempotency_records,
    journal_entries,
    ledger_accounts,
    merchant_keys,
    merchants,
    postings,
    request_replays,
    webhook_attempts,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [
    merchants,
    merchant_keys,
    fee_plans,
    ledger_accounts,
    journal_entries,
    postings,
    request_replays,
    idempotency_records,
    events,
    webhook_attempts,
]

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
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind)
    for statement in POSTGRESQL_TRIGGERS if bind.dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for function in ("ledger_entry_balanced", "ledger_entry_closed", "ledger_append_only"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
    for table in reversed(TABLES):
        table.drop(bind)
