"""Card bindings, their transition trail, quick-pay attempts and the channels' circuit breakers.

Written out by hand, like the revisions before it, so later edits to tables.py never change what this
revision does.

Revision ID: 0005_card_bindings
Revises: 0004_members
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_card_bindings"
down_revision = "0004_members"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "card_bindings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("bank", sa.String(length=10), nullable=False),
        sa.Column("card_masked", sa.String(length=24), nullable=False),
        sa.Column("card_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("card_number_ciphertext", sa.Text(), nullable=False),
        sa.Column("holder_ciphertext", sa.Text(), nullable=True),
        sa.Column("bank_token_ciphertext", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sms_tries", sa.Integer(), nullable=False),
        sa.Column("sms_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_card_bindings_member_id_members")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_card_bindings_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_bindings")),
    )
    with op.batch_alter_table("card_bindings", schema=None) as batch_op:
        batch_op.create_index("ix_card_bindings_member_status", ["member_id", "status"], unique=False)
        batch_op.create_index("ix_card_bindings_fingerprint", ["card_fingerprint", "status"], unique=False)

    op.create_table(
        "card_binding_transitions",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("binding_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["binding_id"], ["card_bindings.id"], name=op.f("fk_card_binding_transitions_binding_id_card_bindings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_binding_transitions")),
    )
    with op.batch_alter_table("card_binding_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_card_binding_transitions_binding", ["binding_id", "id"], unique=False)

    op.create_table(
        "quick_pay_attempts",
        sa.Column("attempt_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("binding_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_quick_pay_attempts_attempt_id_payment_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["binding_id"], ["card_bindings.id"], name=op.f("fk_quick_pay_attempts_binding_id_card_bindings")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_quick_pay_attempts_member_id_members")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_quick_pay_attempts_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("pk_quick_pay_attempts")),
    )
    with op.batch_alter_table("quick_pay_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_quick_pay_attempts_payment", ["payment_id"], unique=False)

    op.create_table(
        "channel_health",
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_health")),
    )


def downgrade() -> None:
    op.drop_table("channel_health")
    with op.batch_alter_table("quick_pay_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_quick_pay_attempts_payment")
    op.drop_table("quick_pay_attempts")
    with op.batch_alter_table("card_binding_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_card_binding_transitions_binding")
    op.drop_table("card_binding_transitions")
    with op.batch_alter_table("card_bindings", schema=None) as batch_op:
        batch_op.drop_index("ix_card_bindings_fingerprint")
        batch_op.drop_index("ix_card_bindings_member_status")
    op.drop_table("card_bindings")
