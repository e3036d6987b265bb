"""Direct-debit mandates (代扣协议) and the debits taken under them.

Revision ID: 0008_mandates
Revises: 0007_pos
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_mandates"
down_revision = "0007_pos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandates",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_mandate_no", sa.String(length=64), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("card_masked", sa.String(length=24), nullable=False),
        sa.Column("max_per_debit_minor", sa.BigInteger(), nullable=False),
        sa.Column("max_per_month_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_until", sa.String(length=10), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("bank_ref_sealed", sa.Text(), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_mandates_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_mandates_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
        sa.UniqueConstraint("merchant_id", "merchant_mandate_no", name="uq_mandates_merchant_mandate_no"),
    )
    op.create_index("ix_mandates_status_valid_until", "mandates", ["status", "valid_until"])
    op.create_table(
        "mandate_debits",
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_mandate_debits_payment_id_payments")),
        sa.ForeignKeyConstraint(["mandate_id"], ["mandates.id"], name=op.f("fk_mandate_debits_mandate_id_mandates")),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_mandate_debits")),
    )
    op.create_index("ix_mandate_debits_mandate_period", "mandate_debits", ["mandate_id", "period"])


def downgrade() -> None:
    op.drop_index("ix_mandate_debits_mandate_period", table_name="mandate_debits")
    op.drop_table("mandate_debits")
    op.drop_index("ix_mandates_status_valid_until", table_name="mandates")
    op.drop_table("mandates")
