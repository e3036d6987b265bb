"""The member ports: the repository of members, merchant links and sessions; SMS codes; and the edge
tools member services need (the PII cipher, the password hasher, the SMS sender, the send limiter).

Cryptography, argon2 and the SMS gateway live in adapters; services see only these Protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.member import Member, MerchantMemberLink, SealedPii, SmsCode


@dataclass(frozen=True, slots=True)
class MemberSession:
    """A wallet sign-in: the hash of the cookie's token, never the token itself."""

    token_hash: str
    member_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def is_valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class MemberRepository(Protocol):
    def add(self, member: Member) -> None:
        """Inserts a member; raises IdNumberInUse or PhoneInUse when a fingerprint is taken."""
        ...

    def get(self, member_id: str) -> Member | None: ...

    def get_for_merchant(self, member_id: str, merchant_id: str) -> Member | None:
        """The member if ``merchant_id`` registered it (has a link to it), else None: one statement."""
        ...

    def get_for_update(self, member_id: str) -> Member | None:
        """The member, its row locked until the unit of work ends (PostgreSQL; SQLite serialises)."""
        ...

    def by_id_number_fingerprint(self, fingerprint: str) -> Member | None: ...

    def by_phone_fingerprint(self, fingerprint: str) -> Member | None: ...

    def update(self, member: Member) -> None:
        """Writes the member's mutable fields (name, PII, status, password hashes, lock state)."""
        ...

    def count_payment_password_failure(self, member_id: str, now: datetime) -> int:
        """Adds one wrong payment password try atomically; returns the failures in a row now."""
        ...

    def add_link(self, link: MerchantMemberLink) -> bool:
        """Links a merchant's external_id to a member; False when the external_id is already linked."""
        ...

    def link(self, merchant_id: str, external_id: str) -> MerchantMemberLink | None: ...

    def links_of(self, member_id: str, merchant_id: str) -> Sequence[MerchantMemberLink]:
        """The merchant's own links to the member (how it may see the member at all)."""
        ...

    def add_session(self, session: MemberSession) -> None: ...

    def session(self, token_hash: str) -> MemberSession | None: ...

    def revoke_session(self, token_hash: str, now: datetime) -> None: ...


class SmsCodeRepository(Protocol):
    def add(self, code: SmsCode) -> None: ...

    def latest(self, phone_fingerprint: str, purpose: str) -> SmsCode | None:
        """The most recent code sent to the phone for the purpose, locked for the unit of work."""
        ...

    def count_failure(self, code_id: str) -> int:
        """Adds one wrong try atomically; returns the wrong tries so far."""
        ...

    def consume(self, code_id: str, now: datetime) -> bool:
        """Marks the code used; False when it was used already (a race lost)."""
        ...


class PiiCipher(Protocol):
    """Encrypts personal numbers (AES-256-GCM) and fingerprints them with a keyed HMAC-SHA256."""

    def encrypt(self, kind: str, value: str, fingerprint: str) -> str:
        """The ciphertext of ``value``, bound to its kind and fingerprint as associated data."""
        ...

    def decrypt(self, kind: str, ciphertext: str, fingerprint: str) -> str: ...

    def fingerprint(self, kind: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` under a key derived from the vault key: stable, not reversible."""
        ...


class PasswordHasher(Protocol):
    """argon2id in production; the cost profile comes from Settings (tests use a cheap one)."""

    def hash(self, secret: str) -> str: ...

    def verify(self, hashed: str, secret: str) -> bool: ...


class SmsSender(Protocol):
    """Sends a text message to a mainland mobile number (the platform's own SMS, not a bank's)."""

    def send(self, phone: str, sealed_phone: SealedPii, text: str) -> None: ...


class SendLimiter(Protocol):
    """Counts sends per key in fixed windows shared by every process (the ``limits`` library)."""

    def allow(self, key: str) -> bool:
        """Counts one send for ``key``; False when any of the configured limits is exceeded."""
        ...


@dataclass(frozen=True, slots=True)
class OutboxSms:
    """One message in the platform's SMS outbox, opened for the development page."""

    phone_masked: str
    text: str
    created_at: datetime
