"""Operator accounts: created by the CLI (or seeded by ``tianpay up``), used by the console."""

from __future__ import annotations

from tianpay.domain.operator import Operator, Role, check_new_operator
from tianpay.ports.clock import Clock
from tianpay.ports.members import PasswordHasher
from tianpay.ports.unit_of_work import UnitOfWorkFactory


def create_operator(
    uow_factory: UnitOfWorkFactory, clock: Clock, hasher: PasswordHasher, username: str, password: str, role: Role
) -> Operator:
    check_new_operator(username, password)
    operator = Operator(username=username, role=role, is_disabled=False, created_at=clock.now())
    with uow_factory() as uow:
        uow.operators.add(operator, hasher.hash(password))
        uow.commit()
    return operator


def check_operator_password(
    uow_factory: UnitOfWorkFactory, hasher: PasswordHasher, username: str, password: str
) -> Operator | None:
    """The operator when the password is right and the account enabled; otherwise None."""
    with uow_factory() as uow:
        operator = uow.operators.get(username)
        stored = uow.operators.password_hash(username)
    if operator is None or stored is None or operator.is_disabled:
        return None
    return operator if hasher.verify(stored, password) else None
