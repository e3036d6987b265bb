"""Payouts (代付) and wallet withdrawals: ``payout_batches``, ``payouts`` and ``payout_transitions``.

Written out by hand, like the earlier revisions, so later edits to tables.py never change what this
revision does.

Revision ID: 0012_payouts
Revises: 0011_settlements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_payouts"
down_revision = "0011_settlements"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("query_count", sa.Integer(), nullable=False),
        sa.Column("next_query_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.create_index("ix_payout_batches_next_query", ["closed_at", "next_query_at"], unique=False)

    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("out_payout_no", sa.String(length=64), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("payee_bank", sa.String(length=10), nullable=False),
        sa.Column("account_name", sa.String(length=60), nullable=False),
        sa.Column("account_masked", sa.String(length=40), nullable=False),
        sa.Column("account_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("account_ciphertext", sa.Text(), nullable=True),
        sa.Column("card_id", sa.String(length=40), nullable=True),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("settlement_id", sa.String(length=40), nullable=True),
        sa.Column("bank_reference", sa.String(length=80), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["payout_batches.id"], name=op.f("fk_payouts_batch_id_payout_batches")
        ),
        sa.ForeignKeyConstraint(["card_id"], ["card_bindings.id"], name=op.f("fk_payouts_card_id_card_bindings")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_payouts_member_id_members")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_payouts_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("merchant_id", "out_payout_no", name="uq_payouts_merchant_out_payout_no"),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index("ix_payouts_status_bank", ["status", "bank", "created_at"], unique=False)
        batch_op.create_index("ix_payouts_merchant", ["merchant_id", "created_at"], unique=False)
        batch_op.create_index("ix_payouts_member", ["member_id", "created_at"], unique=False)
        batch_op.create_index("ix_payouts_batch", ["batch_id"], unique=False)

    op.create_table(
        "payout_transitions",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("payout_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_payout_transitions_payout_id_payouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_transitions")),
    )
    with op.batch_alter_table("payout_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_payout_transitions_payout", ["payout_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payout_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_transitions_payout")
    op.drop_table("payout_transitions")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index("ix_payouts_batch")
        batch_op.drop_index("ix_payouts_member")
        batch_op.drop_index("ix_payouts_merchant")
        batch_op.drop_index("ix_payouts_status_bank")
    op.drop_table("payouts")
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_batches_next_query")
    op.drop_table("payout_batches")
