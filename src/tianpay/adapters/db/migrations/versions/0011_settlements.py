"""Settlement T+N: merchants' settlement settings, settlements and their lines.

Revision ID: 0011_settlements
Revises: 0010_reconciliation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_settlements"
down_revision = "0010_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_settlement_settings",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("cycle_days", sa.Integer(), nullable=False),
        sa.Column("minimum_payout_minor", sa.BigInteger(), nullable=False),
        sa.Column("auto_payout", sa.Boolean(), nullable=False),
        sa.Column("account_bank", sa.String(length=10), nullable=True),
        sa.Column("account_no_ciphertext", sa.Text(), nullable=True),
        sa.Column("account_no_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("account_no_masked", sa.String(length=40), nullable=True),
        sa.Column("account_name", sa.String(length=60), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"],
                                name=op.f("fk_merchant_settlement_settings_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchant_settlement_settings")),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("gross_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunds_minor", sa.BigInteger(), nullable=False),
        sa.Column("fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("net_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=True),
        sa.Column("payout_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_settlements_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("merchant_id", "business_date", name="uq_settlements_merchant_business_date"),
    )
    op.create_index("ix_settlements_status_payout", "settlements", ["status", "payout_id"])
    op.create_table(
        "settlement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("settlement_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=120), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["settlement_id"], ["settlements.id"],
                                name=op.f("fk_settlement_lines_settlement_id_settlements")),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entries.id"],
                                name=op.f("fk_settlement_lines_entry_id_journal_entries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_lines")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_settlement_lines_entry_id")),
    )
    op.create_index("ix_settlement_lines_settlement", "settlement_lines", ["settlement_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_settlement_lines_settlement", table_name="settlement_lines")
    op.drop_table("settlement_lines")
    op.drop_index("ix_settlements_status_payout", table_name="settlements")
    op.drop_table("settlements")
    op.drop_table("merchant_settlement_settings")
