"""The merchant portal's ports: its users and sessions, and the read-only queries its pages make.

Every query takes the merchant id first and answers only that merchant's rows: scoping is done in
the query itself, so a page can never show another merchant's data by forgetting a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.mandate import Mandate
from tianpay.domain.merchant_user import MerchantUser, PortalSession
from tianpay.domain.payment import Payment, PaymentMethod, PaymentStatus
from tianpay.domain.pos import Terminal
from tianpay.ports.payments import PagePosition


class MerchantUserRepository(Protocol):
    def add(self, user: MerchantUser, password_hash: str) -> None:
        """Adds a portal user; raises Conflict when the username is taken (usernames are global)."""
        ...

    def get(self, user_id: str) -> MerchantUser | None: ...

    def by_username(self, username: str) -> MerchantUser | None: ...

    def password_hash(self, user_id: str) -> str | None: ...

    def record_failed_login(self, user_id: str) -> int:
        """Counts one more wrong password in a row; returns the new count."""
        ...

    def lock(self, user_id: str, locked_until: datetime) -> None: ...

    def record_successful_login(self, user_id: str) -> None:
        """Clears the count of wrong passwords and any lock."""
        ...

    def sealed_totp_secret(self, user_id: str) -> str | None: ...

    def set_totp(self, user_id: str, sealed_secret: str | None, *, is_enabled: bool) -> None:
        """Stores a TOTP secret (sealed by the vault) and whether sign-in asks for a code."""
        ...

    def add_session(self, session: PortalSession) -> None: ...

    def session(self, token_hash: str) -> PortalSession | None: ...

    def mark_session_verified(self, token_hash: str) -> None: ...

    def revoke_session(self, token_hash: str, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class PortalPaymentFilter:
    """What the payments search narrows by; None means any. Amounts are minor units, inclusive."""

    status: PaymentStatus | None = None
    method: PaymentMethod | None = None
    bank: str | None = None
    amount_min_minor: int | None = None
    amount_max_minor: int | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    out_trade_no: str | None = None


@dataclass(frozen=True, slots=True)
class MerchantMemberRow:
    """A member as the merchant that registered it sees it: masked numbers only."""

    member_id: str
    external_id: str
    name_masked: str
    phone_masked: str | None
    id_number_masked: str | None
    status: str
    created_at: datetime


class PortalQueries(Protocol):
    def search_payments(
        self, merchant_id: str, filters: PortalPaymentFilter, *, after: PagePosition | None, limit: int
    ) -> Sequence[Payment]:
        """Up to ``limit`` of the merchant's payments matching ``filters``, newest first, after ``after``."""
        ...

    def event_ids_about(self, merchant_id: str, subject_ids: Sequence[str], *, limit: int) -> Sequence[str]:
        """The merchant's events (newest first) whose data names one of ``subject_ids``."""
        ...

    def members_of(self, merchant_id: str, *, limit: int) -> Sequence[MerchantMemberRow]: ...

    def mandates_of(self, merchant_id: str, *, limit: int) -> Sequence[Mandate]: ...

    def terminals_of(self, merchant_id: str) -> Sequence[Terminal]: ...
