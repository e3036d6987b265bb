"""The operators repository over the ``operators`` table."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.operator import Operator, Role

from .tables import operators


class SqlOperatorRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, operator: Operator, password_hash: str) -> None:
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(operators).values(
                        username=operator.username,
                        password_hash=password_hash,
                        role=operator.role.value,
                        is_disabled=operator.is_disabled,
                        created_at=operator.created_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"the operator {operator.username} exists", param="username") from None

    def get(self, username: str) -> Operator | None:
        row = self._connection.execute(
            select(operators.c.username, operators.c.role, operators.c.is_disabled, operators.c.created_at).where(
                operators.c.username == username
            )
        ).first()
        if row is None:
            return None
        return Operator(row.username, Role(row.role), bool(row.is_disabled), row.created_at)

    def password_hash(self, username: str) -> str | None:
        return self._connection.execute(
            select(operators.c.password_hash).where(operators.c.username == username)
        ).scalar_one_or_none()
