"""POS acquiring: terminals (keys sealed by the vault, batch number) and POS transactions.

A POS transaction row is the terminal's view of one 0200 (purchase, void, balance inquiry) keyed by
(tid, batch_no, stan); its reversal (0400, same STAN) is a state of that row, and a reversal still
owed to the switch is persisted there so the worker can finish it after a restart.

Revision ID: 0007_pos
Revises: 0006_operators
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_pos"
down_revision = "0006_operators"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminals",
        sa.Column("tid", sa.String(length=8), nullable=False),
        sa.Column("mid", sa.String(length=15), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("tmk_ciphertext", sa.Text(), nullable=False),
        sa.Column("pik_ciphertext", sa.Text(), nullable=True),
        sa.Column("mak_ciphertext", sa.Text(), nullable=True),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("signed_on_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_terminals_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("tid", name=op.f("pk_terminals")),
    )
    op.create_index("ix_terminals_merchant", "terminals", ["merchant_id"])
    op.create_table(
        "pos_transactions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tid", sa.String(length=8), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("stan", sa.String(length=6), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("card_masked", sa.String(length=24), nullable=False),
        sa.Column("pan_ciphertext", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("response_code", sa.String(length=2), nullable=True),
        sa.Column("rrn", sa.String(length=12), nullable=True),
        sa.Column("auth_code", sa.String(length=6), nullable=True),
        sa.Column("switch_stan", sa.String(length=6), nullable=False),
        sa.Column("transmitted_at", sa.String(length=10), nullable=False),
        sa.Column("original_stan", sa.String(length=6), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("bank", sa.String(length=10), nullable=True),
        sa.Column("reversal_status", sa.String(length=20), nullable=False),
        sa.Column("reversal_tries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_reversal_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pos_transactions")),
        sa.UniqueConstraint("tid", "batch_no", "stan", name="uq_pos_transactions_tid_batch_stan"),
    )
    op.create_index("ix_pos_transactions_reversal", "pos_transactions", ["reversal_status", "next_reversal_at"])
    op.create_index("ix_pos_transactions_payment", "pos_transactions", ["payment_id"])


def downgrade() -> None:
    op.drop_index("ix_pos_transactions_payment", table_name="pos_transactions")
    op.drop_index("ix_pos_transactions_reversal", table_name="pos_transactions")
    op.drop_table("pos_transactions")
    op.drop_index("ix_terminals_merchant", table_name="terminals")
    op.drop_table("terminals")
