"""Merchant portal users: people of a merchant who sign in at ``/merchant``.

A user belongs to exactly one merchant; every portal query is scoped to it. The rules here are pure:
what a username and password must look like, and when repeated wrong passwords lock the account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from tianpay.domain.errors import DomainError

USERNAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9._-]{2,59}")
MIN_PASSWORD_CHARS: Final = 12
# Five wrong passwords in a row lock the account for 15 minutes: enough to stop guessing, short
# enough that a merchant who mistyped is not locked out of refunds for a day.
MAX_FAILED_LOGINS: Final = 5
LOCKOUT: Final = timedelta(minutes=15)


class InvalidMerchantUser(DomainError):
    code = "merchant_user_invalid"


class LoginFailed(DomainError):
    code = "login_failed"


class LoginLocked(DomainError):
    code = "login_locked"


class TotpInvalid(DomainError):
    code = "totp_invalid"


@dataclass(frozen=True, slots=True)
class MerchantUser:
    id: str
    merchant_id: str
    username: str
    is_totp_enabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime

    def is_locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A signed-in browser: ``is_verified`` is False until a TOTP user has typed a valid code."""

    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    is_verified: bool
    revoked_at: datetime | None = None

    def is_valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


def check_new_user(username: str, password: str) -> None:
    """Refuses usernames outside ``[a-z][a-z0-9._-]{2,59}`` and passwords shorter than 12 characters."""
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise InvalidMerchantUser("a username has 3–60 of a–z 0–9 . _ - and starts with a letter", param="username")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidMerchantUser(f"a portal password has at least {MIN_PASSWORD_CHARS} characters", param="password")


def lock_after_failure(failed_logins: int, now: datetime) -> datetime | None:
    """When the account unlocks after its ``failed_logins``-th wrong password in a row (None: not locked)."""
    return now + LOCKOUT if failed_logins >= MAX_FAILED_LOGINS else None
