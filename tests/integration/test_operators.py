"""Operator accounts: argon2id passwords, unique usernames, roles, and the CLI that creates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.passwords import Argon2PasswordHasher
from tianpay.domain.errors import Conflict
from tianpay.domain.operator import InvalidOperator, Role
from tianpay.entrypoints.cli import app
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.operators import check_operator_password, create_operator

HASHER = Argon2PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1)


def test_an_operator_signs_in_with_the_right_password_only(
    uow_factory: UnitOfWorkFactory, clock: SettableClock
) -> None:
    create_operator(uow_factory, clock, HASHER, "li.finance", "correct horse battery", Role.FINANCE)
    signed_in = check_operator_password(uow_factory, HASHER, "li.finance", "correct horse battery")
    assert signed_in is not None
    assert signed_in.role is Role.FINANCE
    assert check_operator_password(uow_factory, HASHER, "li.finance", "wrong horse battery") is None
    assert check_operator_password(uow_factory, HASHER, "nobody", "correct horse battery") is None
    with uow_factory() as uow:
        stored = uow.operators.password_hash("li.finance")
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored


def test_usernames_are_unique_and_weak_passwords_refused(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> None:
    create_operator(uow_factory, clock, HASHER, "wang.support", "long enough password", Role.SUPPORT)
    with pytest.raises(Conflict):
        create_operator(uow_factory, clock, HASHER, "wang.support", "another long password", Role.ADMIN)
    with pytest.raises(InvalidOperator):
        create_operator(uow_factory, clock, HASHER, "zhao", "short", Role.ADMIN)
    with pytest.raises(InvalidOperator):
        create_operator(uow_factory, clock, HASHER, "Bad Name!", "long enough password", Role.ADMIN)


def test_the_cli_creates_an_operator_and_shows_the_password_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["operator", "create", "--username", "ops.admin", "--role", "admin", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout.strip().splitlines()[-1])
    assert created["username"] == "ops.admin"
    assert created["role"] == "admin"
    assert len(created["password"]) >= 12
    again = CliRunner().invoke(app, ["operator", "create", "--username", "ops.admin", "--data-dir", str(tmp_path)])
    assert again.exit_code == 2
