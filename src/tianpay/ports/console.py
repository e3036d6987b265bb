"""The console's ports: the audit log, operator sessions and lockout, bank switches, console-only lists.

``ConsoleRepository`` reads across merchants (the console is the one place that may) and keeps the
audit log; ``ChannelSettingsRepository`` holds the bank switches and costs the router reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.console import AuditRecord, ChannelSetting, OperatorSession
from tianpay.domain.merchant import Merchant, MerchantStatus
from tianpay.domain.settlement import Settlement


@dataclass(frozen=True, slots=True)
class LoginState:
    """An operator's wrong passwords in a row, and when a lock ends (None: not locked)."""

    failed_logins: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """A notification the outbox gave up on, for the support queue."""

    id: str
    merchant_id: str
    type: str
    attempt_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A payout batch with what is still in flight in it."""

    id: str
    bank: str
    item_count: int
    total_minor: int
    currency: str
    query_count: int
    next_query_at: datetime | None
    created_at: datetime
    closed_at: datetime | None


class ConsoleRepository(Protocol):
    # ---- the audit log
    def add_audit(self, record: AuditRecord) -> None: ...

    def audit_records(self, *, operator: str | None, limit: int) -> Sequence[AuditRecord]:
        """Newest first; ``operator`` narrows to one operator's actions."""
        ...

    # ---- sign-in
    def add_session(self, session: OperatorSession) -> None: ...

    def session(self, token_hash: str) -> OperatorSession | None:
        """A session that was not revoked (it may have expired)."""
        ...

    def revoke_session(self, token_hash: str, now: datetime) -> None: ...

    def login_state(self, username: str) -> LoginState: ...

    def record_failed_login(self, username: str, now: datetime) -> int:
        """Counts one more wrong password; returns the count."""
        ...

    def lock(self, username: str, until: datetime) -> None: ...

    def reset_login_failures(self, username: str) -> None: ...

    # ---- console-only reads and writes across merchants
    def merchants(self, *, limit: int) -> Sequence[Merchant]:
        """Newest first."""
        ...

    def set_merchant_status(self, merchant_id: str, status: MerchantStatus, *, expected: MerchantStatus) -> bool:
        """Compare-and-set of the merchant's status; False when it was not ``expected``."""
        ...

    def member_ids(self, *, limit: int) -> Sequence[str]:
        """The newest members' ids."""
        ...

    def failed_events(self, *, limit: int) -> Sequence[FailedEvent]: ...

    def payout_batches(self, *, limit: int) -> Sequence[BatchRow]:
        """Open batches first, then the newest closed ones."""
        ...

    def requery_batch_now(self, batch_id: str, now: datetime) -> bool:
        """Brings an open batch's next query forward to ``now``; False when it is closed or absent."""
        ...

    def settlements(self, *, limit: int) -> Sequence[Settlement]:
        """Every merchant's settlements, newest business date first."""
        ...


class ChannelSettingsRepository(Protocol):
    def all(self) -> Sequence[ChannelSetting]: ...

    def get(self, bank: str) -> ChannelSetting | None: ...

    def save(self, setting: ChannelSetting) -> None:
        """Inserts or replaces the bank's setting."""
        ...
