"""Members, merchant links, wallet sessions, SMS codes and outbox, rate-limit counters, the wallet.

Written out by hand, like the revisions before it, so later edits to tables.py never change what this
revision does. It also inserts the platform's own top-up merchant (see docs/wallet.md).

Revision ID: 0004_members
Revises: 0003_refunds
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004_members"
down_revision = "0003_refunds"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Kept equal to tianpay.domain.wallet.TOP_UP_MERCHANT_ID; a revision never imports the code it migrates.
TOP_UP_MERCHANT_ID = "mch_tianpay_wallet"


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=True),
        sa.Column("id_number_ciphertext", sa.Text(), nullable=True),
        sa.Column("id_number_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("id_number_masked", sa.String(length=24), nullable=True),
        sa.Column("phone_ciphertext", sa.Text(), nullable=True),
        sa.Column("phone_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("phone_masked", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("registered_via", sa.String(length=20), nullable=False),
        sa.Column("is_real_name_verified", sa.Boolean(), nullable=False),
        sa.Column("login_password_hash", sa.Text(), nullable=True),
        sa.Column("payment_password_hash", sa.Text(), nullable=True),
        sa.Column("payment_password_failures", sa.Integer(), nullable=False),
        sa.Column("payment_password_locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("id_number_fingerprint", name="uq_members_id_number_fingerprint"),
        sa.UniqueConstraint("phone_fingerprint", name="uq_members_phone_fingerprint"),
    )
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )
    op.create_table(
        "sms_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("phone_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("failed_tries", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_codes")),
    )
    with op.batch_alter_table("sms_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_codes_phone_purpose", ["phone_fingerprint", "purpose", "created_at"], unique=False
        )

    op.create_table(
        "sms_outbox",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("phone_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("phone_masked", sa.String(length=20), nullable=False),
        sa.Column("body_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_outbox")),
    )
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_sms_outbox_phone", ["phone_fingerprint", "id"], unique=False)

    op.create_table(
        "member_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_sessions_member_id_members")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_member_sessions")),
    )
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_member_sessions_member", ["member_id"], unique=False)

    op.create_table(
        "merchant_members",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_merchant_members_member_id_members")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_members_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "external_id", name=op.f("pk_merchant_members")),
    )
    with op.batch_alter_table("merchant_members", schema=None) as batch_op:
        batch_op.create_index("ix_merchant_members_member", ["member_id"], unique=False)

    op.create_table(
        "wallet_top_ups",
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("then_pay_payment_id", sa.String(length=40), nullable=True),
        sa.Column("then_pay_status", sa.String(length=20), nullable=True),
        sa.Column("then_pay_failure", sa.String(length=60), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("credited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_wallet_top_ups_member_id_members")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_wallet_top_ups_payment_id_payments")),
        sa.ForeignKeyConstraint(
            ["then_pay_payment_id"], ["payments.id"], name=op.f("fk_wallet_top_ups_then_pay_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_wallet_top_ups")),
    )
    with op.batch_alter_table("wallet_top_ups", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_top_ups_member", ["member_id", "created_at"], unique=False)
        batch_op.create_index("ix_wallet_top_ups_then_pay", ["then_pay_status"], unique=False)

    op.create_table(
        "wallet_payments",
        sa.Column("attempt_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_wallet_payments_attempt_id_payment_attempts")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_wallet_payments_member_id_members")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_wallet_payments_payment_id_payments")),
        sa.PrimaryKeyConstraint("attempt_id", name=op.f("pk_wallet_payments")),
        sa.UniqueConstraint("payment_id", name="uq_wallet_payments_payment_id"),
    )
    with op.batch_alter_table("wallet_payments", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_payments_member", ["member_id", "created_at"], unique=False)

    # The platform's own merchant for wallet top-ups: a top-up is a payment to it whose success
    # credits the member's wallet (docs/wallet.md). It has no keys, so it can never call the API.
    op.bulk_insert(
        sa.table(
            "merchants",
            sa.column("id", sa.String),
            sa.column("name", sa.String),
            sa.column("status", sa.String),
            sa.column("webhook_url", sa.Text),
            sa.column("webhook_secret", sa.Text),
            sa.column("created_at", sa.DateTime(timezone=True)),
        ),
        [
            {
                "id": TOP_UP_MERCHANT_ID,
                "name": "天付钱包充值",
                "status": "active",
                "webhook_url": None,
                "webhook_secret": "none",
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
        ],
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM merchants WHERE id = :id").bindparams(id=TOP_UP_MERCHANT_ID))
    with op.batch_alter_table("wallet_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_wallet_payments_member")

    op.drop_table("wallet_payments")
    with op.batch_alter_table("wallet_top_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_wallet_top_ups_then_pay")
        batch_op.drop_index("ix_wallet_top_ups_member")

    op.drop_table("wallet_top_ups")
    with op.batch_alter_table("merchant_members", schema=None) as batch_op:
        batch_op.drop_index("ix_merchant_members_member")

    op.drop_table("merchant_members")
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_member_sessions_member")

    op.drop_table("member_sessions")
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_outbox_phone")

    op.drop_table("sms_outbox")
    with op.batch_alter_table("sms_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_codes_phone_purpose")

    op.drop_table("sms_codes")
    op.drop_table("rate_limit_counters")
    op.drop_table("members")
