"""Operators: the platform's own staff, and the roles the console's permissions are built on.

Roles follow DESIGN.md §10: ``admin`` runs the platform, ``finance`` handles reconciliation,
settlement and payouts, ``support`` answers merchants and payers with masked data only.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tianpay.domain.errors import DomainError

USERNAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9._-]{2,59}")
MIN_PASSWORD_CHARS: Final = 12


class Role(enum.StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"


class InvalidOperator(DomainError):
    code = "operator_invalid"


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    role: Role
    is_disabled: bool
    created_at: datetime


def check_new_operator(username: str, password: str) -> None:
    """Refuses usernames outside ``[a-z][a-z0-9._-]{2,59}`` and passwords shorter than 12 characters."""
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise InvalidOperator("a username has 3–60 of a–z 0–9 . _ - and starts with a letter", param="username")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidOperator(f"an operator password has at least {MIN_PASSWORD_CHARS} characters", param="password")
