"""The operator repository port: staff accounts for the console."""

from __future__ import annotations

from typing import Protocol

from tianpay.domain.operator import Operator


class OperatorRepository(Protocol):
    def add(self, operator: Operator, password_hash: str) -> None:
        """Adds an operator; raises Conflict when the username is taken."""
        ...

    def get(self, username: str) -> Operator | None: ...

    def password_hash(self, username: str) -> str | None: ...
