"""Table definitions shared by the repositories and by Alembic, for SQLite and PostgreSQL alike.

Money columns are BIGINT minor units. Times are stored as aware UTC. The ledger tables are
append-only: triggers created by the migrations refuse updates and deletes, and refuse an entry
whose postings do not balance (see migrations/versions/0001_foundation.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments an INTEGER PRIMARY KEY, so BIGINT keys use INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: store aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_datetime() -> UtcDateTime:
    return UtcDateTime()


merchants = Table(
    "merchants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False, default="active"),
    Column("webhook_url", Text, nullable=True),
    Column("webhook_secret", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
)

merchant_keys = Table(
    "merchant_keys",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("algorithm", String(40), nullable=False),
    Column("public_key_pem", Text, nullable=True),
    # Shared secrets (hmac-sha256) are stored encrypted by the vault, never in clear.
    Column("secret_ciphertext", Text, nullable=True),
    Column("status", String(20), nullable=False, default="active"),
    Column("created_at", utc_datetime(), nullable=False),
    Column("expires_at", utc_datetime(), nullable=True),
)

fee_plans = Table(
    "fee_plans",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("method", String(30), primary_key=True),
    Column("rate_bps", Integer, nullable=False),
    Column("minimum_minor", BigInteger, nullable=False, default=0),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("code", String(120), nullable=False, unique=True),
    Column("type", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_mode", String(10), nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    # Kept only for STORED accounts (as people read it: credit-normal accounts positive).
    Column("balance_minor", BigInteger, nullable=False, default=0),
    Column("created_at", utc_datetime(), nullable=False),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event", String(80), nullable=False),
    Column("source_id", String(120), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", utc_datetime(), nullable=False),
)

postings = Table(
    "postings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Deferred so an entry's postings can be written before the entry row, whose insert trigger
    # then checks that they balance: the database itself refuses an unbalanced entry.
    Column(
        "entry_id",
        String(40),
        ForeignKey("journal_entries.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    Column("account_id", BigId, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("ix_postings_entry_id", "entry_id"),
    Index("ix_postings_account_id_id", "account_id", "id"),
)

request_replays = Table(
    "request_replays",
    metadata,
    # A hash of the signature (and of the nonce, when one is sent): a second use is refused.
    Column("fingerprint", String(64), primary_key=True),
    Column("expires_at", utc_datetime(), nullable=False, index=True),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("scope", String(40), primary_key=True),
    Column("key", String(80), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    # Housekeeping deletes records older than the retention through this (revision 0018).
    Index("ix_idempotency_records_created", "created_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("type", String(60), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    # pending → delivered | failed; a resend puts a failed (or delivered) event back to pending.
    Column("status", String(20), nullable=False),
    Column("attempt_count", Integer, nullable=False, default=0),
    Column("next_attempt_at", utc_datetime(), nullable=True),
    Column("locked_until", utc_datetime(), nullable=True),
    Column("locked_by", String(80), nullable=True),
    Column("delivered_at", utc_datetime(), nullable=True),
    Index("ix_events_due", "status", "next_attempt_at"),
    Index("ix_events_merchant_created", "merchant_id", "created_at"),
    # Housekeeping deletes delivered events past their retention (revision 0016).
    Index("ix_events_status_delivered", "status", "delivered_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False, index=True),
    Column("attempt_no", Integer, nullable=False),
    Column("started_at", utc_datetime(), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    UniqueConstraint("event_id", "attempt_no", name="uq_webhook_attempts_event_attempt"),
)

# Payments: the merchant's request to be paid. Amounts are minor units; `status` moves only by
# compare-and-set writes that follow tianpay.domain.payment.TRANSITIONS.
payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("out_trade_no", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("method", String(30), nullable=False),
    Column("bank", String(10), nullable=True),
    Column("subject", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("notify_url", Text, nullable=True),
    Column("return_url", Text, nullable=True),
    # A small JSON object of strings (at most 20 keys), stored as text on both databases.
    Column("metadata", Text, nullable=False, default="{}"),
    Column("expires_at", utc_datetime(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("refunded_minor", BigInteger, nullable=False, default=0),
    Column("fee_minor", BigInteger, nullable=False, default=0),
    Column("succeeded_attempt_id", String(40), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    UniqueConstraint("merchant_id", "out_trade_no", name="uq_payments_merchant_out_trade_no"),
    Index("ix_payments_merchant_created", "merchant_id", "created_at", "id"),
    Index("ix_payments_status_expires", "status", "expires_at"),
)

# One try of a payment on one channel. Several may exist per payment; at most one succeeds for the
# merchant (a later success is refunded, see late_success_refunds).
payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("bank", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("bank_reference", String(80), nullable=True),
    Column("failure_code", String(60), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    # The re-query schedule (revision 0002): null until the first query, which is due a configured
    # while after creation; then exponential back-off. Claiming a query moves next_query_at by a
    # compare-and-set on query_count, so two workers never ask the bank about one attempt at once.
    Column("next_query_at", utc_datetime(), nullable=True),
    Column("query_count", Integer, nullable=False, default=0, server_default="0"),
    Column("last_queried_at", utc_datetime(), nullable=True),
    Index("ix_payment_attempts_payment", "payment_id", "created_at"),
    # The re-query job looks for attempts still in flight, oldest first.
    Index("ix_payment_attempts_status_updated", "status", "updated_at"),
    Index("ix_payment_attempts_status_next_query", "status", "next_query_at"),
)

# Every state change of a payment or of one of its attempts, with its time and cause: the audit
# trail support reads when a merchant asks "what happened to this payment?".
payment_transitions = Table(
    "payment_transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    # Null for a transition of the payment itself.
    Column("attempt_id", String(40), nullable=True),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("event", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_payment_transitions_payment", "payment_id", "id"),
)

# An attempt that succeeded after another attempt of the same payment already had: the payer paid
# twice and is owed this one back. The refund machinery picks up `pending` rows.
late_success_refunds = Table(
    "late_success_refunds",
    metadata,
    Column("attempt_id", String(40), ForeignKey("payment_attempts.id"), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("bank", String(10), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("bank_reference", String(80), nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_late_success_refunds_status", "status", "created_at"),
)

# Something an operator must look at (revision 0002): a bank notification whose amount differs from
# the attempt's, a bank that changed its mind about a final answer … The console lists open alerts;
# `dedupe_key` makes raising the same alert again (a bank retrying its notification) a no-op.
operator_alerts = Table(
    "operator_alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(60), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("subject_id", String(40), nullable=True),
    Column("message", Text, nullable=False),
    # A small JSON object of strings (bank, codes, amounts); never a card number, key or signature.
    Column("details", Text, nullable=False, default="{}"),
    Column("status", String(20), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Column("resolved_at", utc_datetime(), nullable=True),
    UniqueConstraint("dedupe_key", name="uq_operator_alerts_dedupe_key"),
    Index("ix_operator_alerts_status_created", "status", "created_at"),
)

# Refunds of a payment (the merchant's) or of a late attempt (the platform's, kind late_success).
# `status` moves only by compare-and-set writes that follow tianpay.domain.refund.TRANSITIONS; the
# re-query job scans in-flight refunds by (status, next_query_at).
refunds = Table(
    "refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    # Null for late-success refunds, which no merchant asked for (NULLs never collide in a unique key).
    Column("out_refund_no", String(64), nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fee_returned_minor", BigInteger, nullable=False, default=0),
    Column("reason", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("bank", String(10), nullable=False),
    Column("attempt_id", String(40), ForeignKey("payment_attempts.id"), nullable=False),
    Column("bank_reference", String(80), nullable=True),
    Column("failure_code", String(60), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("query_count", Integer, nullable=False, default=0),
    Column("next_query_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Column("succeeded_at", utc_datetime(), nullable=True),
    UniqueConstraint("merchant_id", "out_refund_no", name="uq_refunds_merchant_out_refund_no"),
    Index("ix_refunds_payment", "payment_id", "created_at"),
    Index("ix_refunds_status_next_query", "status", "next_query_at"),
)

# Every state change of a refund, with its time and cause (DESIGN.md §5).
refund_transitions = Table(
    "refund_transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("event", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_refund_transitions_refund", "refund_id", "id"),
)

# ---- members, SMS codes and the wallet (revision 0004) ------------------------------------------------

# A natural person with a Tianpay identity. ID numbers and phones are never stored in clear: each has
# an AES-256-GCM ciphertext (the vault), a masked copy for display and a keyed HMAC-SHA256 fingerprint
# for look-ups (unique: one person, one member; one phone, one wallet login).
members = Table(
    "members",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(60), nullable=True),
    Column("id_number_ciphertext", Text, nullable=True),
    Column("id_number_fingerprint", String(64), nullable=True),
    Column("id_number_masked", String(24), nullable=True),
    Column("phone_ciphertext", Text, nullable=True),
    Column("phone_fingerprint", String(64), nullable=True),
    Column("phone_masked", String(20), nullable=True),
    Column("status", String(20), nullable=False),
    Column("registered_via", String(20), nullable=False),
    Column("is_real_name_verified", Boolean, nullable=False, default=False),
    Column("login_password_hash", Text, nullable=True),
    Column("payment_password_hash", Text, nullable=True),
    Column("payment_password_failures", Integer, nullable=False, default=0),
    Column("payment_password_locked_until", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    UniqueConstraint("id_number_fingerprint", name="uq_members_id_number_fingerprint"),
    UniqueConstraint("phone_fingerprint", name="uq_members_phone_fingerprint"),
)

# How a merchant knows a member: its own `external_id`, the idempotency key of implicit registration.
# A member registered by two merchants has two rows here and each merchant sees only its own.
merchant_members = Table(
    "merchant_members",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    # A hash of what the merchant sent, so a repeat with other data is an idempotency conflict.
    Column("request_hash", String(64), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_merchant_members_member", "member_id"),
)

# Wallet sign-in sessions. Only a hash of the cookie's token is stored, so a leaked table opens none.
member_sessions = Table(
    "member_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Column("expires_at", utc_datetime(), nullable=False),
    Column("revoked_at", utc_datetime(), nullable=True),
    Index("ix_member_sessions_member", "member_id"),
    # Housekeeping finds expired rows through this (revision 0016); every other table it purges by
    # expires_at carries the same index.
    Index("ix_member_sessions_expires", "expires_at"),
)

# One-time SMS codes: only a keyed hash of the code is kept, with its expiry and the tries left.
sms_codes = Table(
    "sms_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("phone_fingerprint", String(64), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("failed_tries", Integer, nullable=False, default=0),
    Column("expires_at", utc_datetime(), nullable=False),
    Column("consumed_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_sms_codes_phone_purpose", "phone_fingerprint", "purpose", "created_at"),
    Index("ix_sms_codes_expires", "expires_at"),
)

# The platform's own SMS outbox: what the SMS adapter "sent". Bodies are sealed by the vault, since
# they carry live codes; the development page opens them only when Settings.dev_sms_outbox is on.
sms_outbox = Table(
    "sms_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone_fingerprint", String(64), nullable=False),
    Column("phone_masked", String(20), nullable=False),
    Column("body_ciphertext", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_sms_outbox_phone", "phone_fingerprint", "id"),
    # Housekeeping deletes messages older than the retention through this (revision 0018).
    Index("ix_sms_outbox_created", "created_at"),
)

# Fixed-window counters for the `limits` library (adapters/rate_limits.py): shared by every serve
# process through the database, which an in-memory limiter would not be.
rate_limit_counters = Table(
    "rate_limit_counters",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", utc_datetime(), nullable=False),
    Index("ix_rate_limit_counters_expires", "expires_at"),
)

# A wallet payment's payer: the attempt that moved the money from the member's wallet.
wallet_payments = Table(
    "wallet_payments",
    metadata,
    Column("attempt_id", String(40), ForeignKey("payment_attempts.id"), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    UniqueConstraint("payment_id", name="uq_wallet_payments_payment_id"),
    Index("ix_wallet_payments_member", "member_id", "created_at"),
)

# A top-up is a platform-internal payment (merchant `mch_tianpay_wallet`) whose success credits the
# member's wallet; `then_pay_payment_id` is the wallet payment to make once it succeeds (cashier
# top-up-and-pay), with its progress in `then_pay_status` (awaiting → paid | failed).
wallet_top_ups = Table(
    "wallet_top_ups",
    metadata,
    Column("payment_id", String(40), ForeignKey("payments.id"), primary_key=True),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("then_pay_payment_id", String(40), ForeignKey("payments.id"), nullable=True),
    Column("then_pay_status", String(20), nullable=True),
    Column("then_pay_failure", String(60), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("credited_at", utc_datetime(), nullable=True),
    Index("ix_wallet_top_ups_member", "member_id", "created_at"),
    Index("ix_wallet_top_ups_then_pay", "then_pay_status"),
)

# ---- card bindings, quick pay and channel health (revision 0005) ---------------------------------------

# A member's bank card bound for quick pay (tianpay.domain.card_binding). The card number is kept as
# a vault ciphertext, a masked copy and a keyed fingerprint (for "already bound?"); the other three
# elements only while the binding waits for its SMS code; the bank's token (JHB's bind token, then
# HBB's card token or JHB's no_agree) only sealed. `status` moves by compare-and-set.
card_bindings = Table(
    "card_bindings",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    # The merchant whose backend bound the card (null when the member bound it in the wallet).
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=True),
    Column("bank", String(10), nullable=False),
    Column("card_masked", String(24), nullable=False),
    Column("card_fingerprint", String(64), nullable=False),
    Column("card_number_ciphertext", Text, nullable=False),
    Column("holder_ciphertext", Text, nullable=True),
    Column("bank_token_ciphertext", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("sms_tries", Integer, nullable=False, default=0),
    Column("sms_expires_at", utc_datetime(), nullable=False),
    Column("failure_code", String(60), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Column("bound_at", utc_datetime(), nullable=True),
    Column("unbound_at", utc_datetime(), nullable=True),
    Index("ix_card_bindings_member_status", "member_id", "status"),
    Index("ix_card_bindings_fingerprint", "card_fingerprint", "status"),
)

# Every state change of a card binding, with its time and cause (DESIGN.md §5).
card_binding_transitions = Table(
    "card_binding_transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("binding_id", String(40), ForeignKey("card_bindings.id"), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("event", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_card_binding_transitions_binding", "binding_id", "id"),
)

# Which bound card paid a quick-pay attempt (an attempt of a failover names the other bank's card).
quick_pay_attempts = Table(
    "quick_pay_attempts",
    metadata,
    Column("attempt_id", String(40), ForeignKey("payment_attempts.id"), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("binding_id", String(40), ForeignKey("card_bindings.id"), nullable=False),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_quick_pay_attempts_payment", "payment_id"),
)

# One circuit breaker per channel (tianpay.domain.channel_health), shared by every process: each
# write is a compare-and-set on `version`. The console reads it to show banks out of rotation.
channel_health = Table(
    "channel_health",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("window_started_at", utc_datetime(), nullable=True),
    Column("opened_at", utc_datetime(), nullable=True),
    Column("probe_started_at", utc_datetime(), nullable=True),
    Column("last_failure", Text, nullable=True),
    Column("version", Integer, nullable=False, default=0),
    Column("updated_at", utc_datetime(), nullable=False),
)

operators = Table(
    "operators",
    metadata,
    # The platform's own staff who use the console. Passwords are argon2id hashes; the role decides
    # what the server lets them do (admin, finance, support).
    Column("username", String(60), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    Column("is_disabled", Boolean, nullable=False, default=False),
    Column("created_at", utc_datetime(), nullable=False),
)

# POS terminals (migration 0007): the terminal master key (TMK) and the current working keys
# (PIK, MAK) are sealed by the vault with the tid as context; the clear TMK is shown once.
terminals = Table(
    "terminals",
    metadata,
    Column("tid", String(8), primary_key=True),
    Column("mid", String(15), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("tmk_ciphertext", Text, nullable=False),
    Column("pik_ciphertext", Text, nullable=True),
    Column("mak_ciphertext", Text, nullable=True),
    Column("batch_no", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("signed_on_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Index("ix_terminals_merchant", "merchant_id"),
)

# One terminal request (purchase, void, balance inquiry), keyed as the terminal keys it: (tid,
# batch, STAN). A reversal (0400) carries the original's STAN, so it is a state of this row; a
# reversal still owed to the switch (reversal_status "pending") is finished by the worker.
pos_transactions = Table(
    "pos_transactions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tid", String(8), nullable=False),
    Column("batch_no", Integer, nullable=False),
    Column("stan", String(6), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("card_masked", String(24), nullable=False),
    # The card number sealed by the vault: a reversal (0400) must carry F2 (docs/banks/tcs.md §4).
    Column("pan_ciphertext", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("response_code", String(2), nullable=True),
    Column("rrn", String(12), nullable=True),
    Column("auth_code", String(6), nullable=True),
    # The STAN and F7 this platform used towards the switch (its own trace numbering).
    Column("switch_stan", String(6), nullable=False),
    Column("transmitted_at", String(10), nullable=False),
    Column("original_stan", String(6), nullable=True),
    Column("payment_id", String(40), nullable=True),
    Column("bank", String(10), nullable=True),
    Column("reversal_status", String(20), nullable=False),
    Column("reversal_tries", Integer, nullable=False, default=0, server_default="0"),
    Column("next_reversal_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    UniqueConstraint("tid", "batch_no", "stan", name="uq_pos_transactions_tid_batch_stan"),
    Index("ix_pos_transactions_reversal", "reversal_status", "next_reversal_at"),
    Index("ix_pos_transactions_payment", "payment_id"),
)


# Direct-debit mandates (代扣协议, DESIGN.md §5). The bank's token (while applied) and then its
# mandate number are sealed by the PII cipher; ``valid_until`` is a Beijing date (ISO text).
mandates = Table(
    "mandates",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=False),
    Column("merchant_mandate_no", String(64), nullable=False),
    Column("bank", String(10), nullable=False),
    Column("card_masked", String(24), nullable=False),
    Column("max_per_debit_minor", BigInteger, nullable=False),
    Column("max_per_month_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("valid_until", String(10), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("bank_ref_sealed", Text, nullable=True),
    Column("failure_code", String(60), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    UniqueConstraint("merchant_id", "merchant_mandate_no", name="uq_mandates_merchant_mandate_no"),
    Index("ix_mandates_status_valid_until", "status", "valid_until"),
)

# One row per debit: the payment it became and the Beijing month it counts against.
mandate_debits = Table(
    "mandate_debits",
    metadata,
    Column("payment_id", String(40), ForeignKey("payments.id"), primary_key=True),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False),
    Column("period", String(7), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_mandate_debits_mandate_period", "mandate_id", "period"),
)

# Monthly debit schedules on mandates (docs/direct-debit.md). ``fixed_amount_minor`` is null for a
# ``bill`` schedule, whose amount per period comes from ``debit_schedule_bills``.
debit_schedules = Table(
    "debit_schedules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False),
    Column("day_of_month", Integer, nullable=False),
    Column("amount_kind", String(10), nullable=False),
    Column("fixed_amount_minor", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("first_period", String(7), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_debit_schedules_status_day", "status", "day_of_month"),
    Index("ix_debit_schedules_mandate_id", "mandate_id"),
)

# One bill per (schedule, period): the amount a ``bill`` schedule debits that month.
debit_schedule_bills = Table(
    "debit_schedule_bills",
    metadata,
    Column("schedule_id", String(40), ForeignKey("debit_schedules.id"), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
)

# The claim: a worker inserts (schedule, period) before it calls the bank; the primary key makes
# the second worker's insert fail, so a period is debited once however many workers run.
debit_schedule_runs = Table(
    "debit_schedule_runs",
    metadata,
    Column("schedule_id", String(40), ForeignKey("debit_schedules.id"), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=True),
    Column("failure_code", String(60), nullable=True),
    Column("claimed_by", String(120), nullable=False),
    Column("claimed_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
)

# ---- the merchant portal (revision 0014) --------------------------------------------------------------

# People of a merchant who sign in at /merchant. The password is an argon2id hash; the TOTP secret is
# sealed by the vault (context: the user id). Wrong passwords in a row are counted for the lockout.
merchant_users = Table(
    "merchant_users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("username", String(60), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("totp_secret_sealed", Text, nullable=True),
    Column("is_totp_enabled", Boolean, nullable=False, default=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_merchant_users_merchant", "merchant_id"),
)

# Portal sign-in sessions: only a hash of the cookie's token is stored. `is_verified` turns true once
# a user with TOTP has typed a valid code; until then the session opens only the code page.
merchant_user_sessions = Table(
    "merchant_user_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("merchant_users.id"), nullable=False),
    Column("is_verified", Boolean, nullable=False, default=False),
    Column("created_at", utc_datetime(), nullable=False),
    Column("expires_at", utc_datetime(), nullable=False),
    Column("revoked_at", utc_datetime(), nullable=True),
    Index("ix_merchant_user_sessions_user", "user_id"),
    Index("ix_merchant_user_sessions_expires", "expires_at"),
)

# ---- payouts (代付) and wallet withdrawals (revision 0012) ----------------------------------------------

# One request to one bank, persisted with its payouts before it is sent (DESIGN.md §7); its id is the
# bank's batch request number. It is queried as a whole until every payout in it is final.
payout_batches = Table(
    "payout_batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("bank", String(10), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("query_count", Integer, nullable=False, default=0),
    Column("next_query_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("closed_at", utc_datetime(), nullable=True),
    Index("ix_payout_batches_next_query", "closed_at", "next_query_at"),
)

# A merchant's payout or a member's withdrawal. The payee account number is sealed by the vault with a
# masked copy and a keyed fingerprint; a withdrawal keeps no copy: it names the bound card instead.
payouts = Table(
    "payouts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(20), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=True),
    Column("member_id", String(40), ForeignKey("members.id"), nullable=True),
    # Null for withdrawals and automatic settlement payouts (NULLs never collide in a unique key).
    Column("out_payout_no", String(64), nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("purpose", String(60), nullable=False),
    Column("payee_bank", String(10), nullable=False),
    Column("account_name", String(60), nullable=False),
    Column("account_masked", String(40), nullable=False),
    Column("account_fingerprint", String(64), nullable=False),
    Column("account_ciphertext", Text, nullable=True),
    Column("card_id", String(40), ForeignKey("card_bindings.id"), nullable=True),
    Column("bank", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("batch_id", String(40), ForeignKey("payout_batches.id"), nullable=True),
    Column("settlement_id", String(40), nullable=True),
    Column("bank_reference", String(80), nullable=True),
    Column("failure_code", String(60), nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Column("succeeded_at", utc_datetime(), nullable=True),
    Column("failed_at", utc_datetime(), nullable=True),
    Column("returned_at", utc_datetime(), nullable=True),
    UniqueConstraint("merchant_id", "out_payout_no", name="uq_payouts_merchant_out_payout_no"),
    Index("ix_payouts_status_bank", "status", "bank", "created_at"),
    Index("ix_payouts_merchant", "merchant_id", "created_at"),
    Index("ix_payouts_member", "member_id", "created_at"),
    Index("ix_payouts_batch", "batch_id"),
)

# Every state change of a payout, with its time and cause (DESIGN.md §5).
payout_transitions = Table(
    "payout_transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("payout_id", String(40), ForeignKey("payouts.id"), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("event", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_payout_transitions_payout", "payout_id", "id"),
)

# A merchant's payout review threshold (revision 0018, docs/payouts.md "Review"): its payouts of at
# least this many fen wait in ``pending_review`` for an operator. No row: no review.
payout_review_thresholds = Table(
    "payout_review_thresholds",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("threshold_minor", BigInteger, nullable=False),
    Column("updated_by", String(60), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
)

# ---- settlement T+N (revision 0011) -------------------------------------------------------------------

# How a merchant is settled (docs/settlement.md). The settlement account number is sealed by the vault
# (AES-256-GCM, bound to its keyed fingerprint) with a masked copy for display; a merchant without a
# row here is settled T+1 with no automatic payout.
merchant_settlement_settings = Table(
    "merchant_settlement_settings",
    metadata,
    Column("merchant_id", String(40), ForeignKey("merchants.id"), primary_key=True),
    Column("cycle_days", Integer, nullable=False),
    Column("minimum_payout_minor", BigInteger, nullable=False),
    Column("auto_payout", Boolean, nullable=False),
    Column("account_bank", String(10), nullable=True),
    Column("account_no_ciphertext", Text, nullable=True),
    Column("account_no_fingerprint", String(64), nullable=True),
    Column("account_no_masked", String(40), nullable=True),
    Column("account_name", String(60), nullable=True),
    Column("updated_at", utc_datetime(), nullable=False),
)

# One settlement per merchant and business date (Shanghai, ``YYYY-MM-DD``): the unique key is what
# makes a rerun, or two workers at once, settle a date once. ``entry_id`` is the journal entry that
# moved the net (none for a zero net or a carried date).
settlements = Table(
    "settlements",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    Column("refunds_minor", BigInteger, nullable=False),
    Column("fees_minor", BigInteger, nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("entry_id", String(40), nullable=True),
    Column("payout_id", String(40), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Column("settled_at", utc_datetime(), nullable=True),
    Column("paid_at", utc_datetime(), nullable=True),
    UniqueConstraint("merchant_id", "business_date", name="uq_settlements_merchant_business_date"),
    Index("ix_settlements_status_payout", "status", "payout_id"),
)

# A settlement's lines: one per journal entry on the merchant's pending account. The unique
# ``entry_id`` is what settles an entry at most once, whichever date or worker reaches it first.
settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("settlement_id", String(40), ForeignKey("settlements.id"), nullable=False),
    Column("entry_id", String(40), ForeignKey("journal_entries.id"), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("source_id", String(120), nullable=False),
    Column("reference", String(64), nullable=True),
    Column("occurred_at", utc_datetime(), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Index("ix_settlement_lines_settlement", "settlement_id", "id"),
)

# ---- reconciliation (revision 0010, docs/reconciliation.md) ----------------------------------------------

# A bank's statement file as downloaded (kept on disk unchanged under <data-dir>/statements/): its
# SHA-256 makes importing it again a no-op; a different file for the same (bank, date) is refused.
statement_files = Table(
    "statement_files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("bank", String(10), nullable=False),
    Column("statement_date", String(10), nullable=False),
    Column("file_name", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("imported_at", utc_datetime(), nullable=False),
    UniqueConstraint("bank", "statement_date", "sha256", name="uq_statement_files_bank_date_sha256"),
)

# The lines of an imported file, staged in bulk so matching runs in SQL. ``match_ref`` is the
# platform record the line names: its platform_ref, or the POS attempt found by the switch's RRN.
statement_lines = Table(
    "statement_lines",
    metadata,
    Column("file_id", String(40), ForeignKey("statement_files.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("bank", String(10), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("bank_ref", String(80), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("platform_ref", String(64), nullable=True),
    Column("switch_ref", String(40), nullable=True),
    Column("match_ref", String(64), nullable=True),
    Column("occurred_at", utc_datetime(), nullable=True),
    Index("ix_statement_lines_bank_match_ref", "bank", "match_ref"),
)

# One run per (bank, business date): claimed with a lease so several workers never run it at once;
# once finished it is never run again. ``summary`` is a small JSON object of counts and totals.
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("bank", String(10), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("file_id", String(40), ForeignKey("statement_files.id"), nullable=True),
    Column("summary", Text, nullable=False, default="{}"),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_expires_at", utc_datetime(), nullable=True),
    Column("next_try_at", utc_datetime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("started_at", utc_datetime(), nullable=True),
    Column("finished_at", utc_datetime(), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    UniqueConstraint("bank", "business_date", name="uq_reconciliation_runs_bank_business_date"),
    Index("ix_reconciliation_runs_business_date_status", "business_date", "status"),
)

# Differences for an operator (差错池): what was found, what it left in platform:suspense (signed as
# the asset), and how it was resolved. ``dedupe_key`` makes a resumed run open each one once.
reconciliation_exceptions = Table(
    "reconciliation_exceptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), ForeignKey("reconciliation_runs.id"), nullable=False),
    Column("bank", String(10), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("dedupe_key", String(200), nullable=False),
    Column("record_id", String(64), nullable=True),
    Column("bank_ref", String(80), nullable=True),
    Column("line_no", Integer, nullable=True),
    Column("statement_amount_minor", BigInteger, nullable=True),
    Column("platform_amount_minor", BigInteger, nullable=True),
    Column("suspense_minor", BigInteger, nullable=False),
    Column("entry_id", String(40), nullable=True),
    Column("status", String(20), nullable=False),
    Column("resolution", String(20), nullable=True),
    Column("resolution_entry_id", String(40), nullable=True),
    Column("resolved_by", String(60), nullable=True),
    Column("reason", Text, nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("resolved_at", utc_datetime(), nullable=True),
    UniqueConstraint("dedupe_key", name="uq_reconciliation_exceptions_dedupe_key"),
    Index("ix_reconciliation_exceptions_status_created", "status", "created_at"),
    Index("ix_reconciliation_exceptions_run", "run_id"),
    # Looked up on every recorded bank success (services/suspense_follow_ups.py; migration 0017).
    Index("ix_reconciliation_exceptions_record", "record_id"),
)

# Records final on the platform's side that a statement did not list (a day-cut item, magic 93):
# parked until the next date's run, which finds them (matched) or turns them into 短款 (short).
reconciliation_parked = Table(
    "reconciliation_parked",
    metadata,
    Column("bank", String(10), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("record_kind", String(20), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("run_id", String(40), ForeignKey("reconciliation_runs.id"), nullable=False),
    Column("resolved_run_id", String(40), nullable=True),
    Column("created_at", utc_datetime(), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
    Index("ix_reconciliation_parked_bank_status", "bank", "status", "business_date"),
)

# ---- statistics (revision 0013) ------------------------------------------------------------------------

# Daily figures per merchant, Shanghai business date, method, bank and currency (docs/statistics.md).
# A row is rewritten whole from the day's payments and refunds whenever a transition touches the day,
# so the figures always equal a scan and a rerun changes nothing. `bank` is "" for a payment that
# never reached a bank. The primary key answers a merchant's date range; the date index the
# platform-wide views and /metrics.
daily_payment_stats = Table(
    "daily_payment_stats",
    metadata,
    Column("merchant_id", String(40), primary_key=True),
    Column("business_date", Date, primary_key=True),
    Column("method", String(30), primary_key=True),
    Column("bank", String(10), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("payment_count", BigInteger, nullable=False),
    Column("succeeded_count", BigInteger, nullable=False),
    Column("failed_count", BigInteger, nullable=False),
    Column("closed_count", BigInteger, nullable=False),
    Column("succeeded_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("refund_count", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("fee_returned_minor", BigInteger, nullable=False),
    Index("ix_daily_payment_stats_date", "business_date"),
)

# How far the aggregation job has read each change log (payment_transitions, refund_transitions).
# The job locks these rows for its run, so two workers never rewrite the same day at once.
statistics_watermarks = Table(
    "statistics_watermarks",
    metadata,
    Column("source", String(40), primary_key=True),
    Column("settled_id", BigInteger, nullable=False),
    Column("seen_id", BigInteger, nullable=False),
    Column("pending_count", BigInteger, nullable=False),
    Column("updated_at", utc_datetime(), nullable=True),
)

# When each worker job last ran, written by every worker process: /metrics reports the lag from it.
worker_job_runs = Table(
    "worker_job_runs",
    metadata,
    Column("job", String(60), primary_key=True),
    Column("last_run_at", utc_datetime(), nullable=False),
)

# Indexes the statistics and the merchant's search need on tables of earlier revisions: refunds by
# the day they succeeded (the refund half of a day's figures), payments by merchant and status (a
# filtered search that would otherwise walk every payment of the merchant), attempts by creation
# time (success rate per channel).
Index("ix_refunds_succeeded_merchant", refunds.c.succeeded_at, refunds.c.merchant_id)
Index("ix_payments_merchant_status_created", payments.c.merchant_id, payments.c.status, payments.c.created_at,
      payments.c.id)
Index("ix_payment_attempts_created", payment_attempts.c.created_at)

# ---- the operator console (revision 0015, docs/console.md) --------------------------------------------

# Every manual action taken in the console: who, in which role, what, on which subject, why, and the
# subject before and after as small JSON objects (masked numbers only). Rows are only ever inserted.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("operator", String(60), nullable=False),
    Column("role", String(20), nullable=False),
    Column("action", String(60), nullable=False),
    Column("subject_type", String(40), nullable=False),
    Column("subject_id", String(120), nullable=False),
    Column("reason", Text, nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Index("ix_audit_log_created", "created_at", "id"),
    Index("ix_audit_log_operator_created", "operator", "created_at"),
)

# Console sign-in sessions: only the SHA-256 of the cookie's token is stored.
operator_sessions = Table(
    "operator_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(60), ForeignKey("operators.username"), nullable=False),
    Column("created_at", utc_datetime(), nullable=False),
    Column("expires_at", utc_datetime(), nullable=False),
    Column("revoked_at", utc_datetime(), nullable=True),
    Index("ix_operator_sessions_username", "username"),
    Index("ix_operator_sessions_expires", "expires_at"),
)

# Wrong console passwords in a row per operator, and the lock they caused (5 tries, 15 minutes). Kept
# beside `operators` rather than in it so revision 0006's table is left as it was.
operator_logins = Table(
    "operator_logins",
    metadata,
    Column("username", String(60), ForeignKey("operators.username"), primary_key=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", utc_datetime(), nullable=True),
)

# A bank switched off (out of every route: cashier, quick pay, online banking) or given another cost
# by an operator. A bank without a row is enabled at the cost configured in channels/registry.py.
channel_settings = Table(
    "channel_settings",
    metadata,
    Column("bank", String(10), primary_key=True),
    Column("is_enabled", Boolean, nullable=False),
    Column("cost_bps", Integer, nullable=True),
    Column("updated_by", String(60), nullable=False),
    Column("updated_at", utc_datetime(), nullable=False),
)
