"""A wallet payment over the signed API in few units of work, on both databases (docs/performance.md).

``POST /v1/payments`` takes two units of work (authentication, the idempotent create) and seven
statements (the key look-up and the replay record; the idempotency claim, the fee plan, the payment,
its transition and the stored answer), and ``POST /v1/payments/{id}/confirm`` four units of work
(authentication, the payment read that picks the handler, the member read, the paying unit of
work). The folded reads must not weaken the password rules: a wrong password is still counted in its
own commit and the fifth miss still locks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import requests
from sqlalchemy import event
from stdnum.cn import ric

from tests.api.conftest import ApiServer, SignedClient
from tests.members.conftest import cheap_hasher
from tianpay.domain.money import Money
from tianpay.services import members, payments, wallet

PASSWORD = "135790"


@pytest.fixture(scope="module", autouse=True)
def cheap_password_hashing(api_server: ApiServer) -> None:
    # The cost profile is configuration (Settings.argon2_*), not behaviour.
    container = api_server.container
    container.__dict__["member_tools"] = replace(container.member_tools, hasher=cheap_hasher())


class UnitsOfWork:
    """Counts the connections an engine hands out (one per unit of work) and the statements sent."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.opened = 0
        self.statements: list[str] = []
        event.listen(engine, "engine_connect", self._connected)
        event.listen(engine, "before_cursor_execute", self._executed)

    def _connected(self, *_args: Any) -> None:
        self.opened += 1

    def _executed(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE is a statement our engine sends (engine.py), while psycopg sends
        # PostgreSQL's BEGIN itself, outside any cursor; leaving it out makes both counts the same.
        if statement != "BEGIN IMMEDIATE":
            self.statements.append(statement)

    def take(self) -> int:
        opened, self.opened = self.opened, 0
        return opened

    def take_statements(self) -> list[str]:
        statements, self.statements = self.statements, []
        return statements

    def stop(self) -> None:
        event.remove(self.engine, "engine_connect", self._connected)
        event.remove(self.engine, "before_cursor_execute", self._executed)


def _payer(api_server: ApiServer, client: SignedClient, balance_minor: int, serial: int) -> str:
    """A member of its own (one person is one member, so each test registers another person)."""
    container = api_server.container
    id_body = f"11010519900307{serial:03d}"
    body = {"external_id": f"rt-{serial}", "name": "王芳", "id_number": id_body + ric.calc_check_digit(id_body + "0"),
            "phone": f"1390014{serial:04d}"}
    registered = client.post("/v1/members", json=body)
    assert registered.status_code == 201, registered.text
    member_id: str = registered.json()["id"]
    members.set_payment_password(container.uow, container.member_tools, member_id, PASSWORD)
    started = wallet.start_top_up(container.uow, container.member_tools, member_id, Money.cny(balance_minor),
                                  return_url="https://pay.example/w", bank="HBB")
    attempt = payments.start_attempt(container.uow, container.clock, container.ids, started.payment.id,
                                     channel="hbb.online_banking", bank="HBB")
    payments.record_attempt_succeeded(container.uow, container.clock, started.payment.id, attempt.id,
                                      bank_reference=f"r-{attempt.id}", amount=Money.cny(balance_minor))
    return member_id


def _order(client: SignedClient, out_trade_no: str, amount_minor: int = 1_000) -> str:
    created = client.post("/v1/payments", json={
        "out_trade_no": out_trade_no, "amount": amount_minor, "currency": "CNY", "method": "wallet", "subject": "咖啡",
    })
    assert created.status_code == 201, created.text
    payment_id: str = created.json()["id"]
    return payment_id


def test_a_wallet_payment_takes_two_units_of_work_and_seven_statements_to_create_and_four_to_confirm(
    api_server: ApiServer, api_client: SignedClient
) -> None:
    member_id = _payer(api_server, api_client, 10_000, 901)
    counted = UnitsOfWork(api_server.container.engine)
    try:
        payment_id = _order(api_client, "rt-ok")
        assert counted.take() == 2
        # Ten before docs/performance.md's "Claim first, no savepoint": the idempotency record was
        # read before it was claimed, and the payment's insert was wrapped in SAVEPOINT … RELEASE.
        created = counted.take_statements()
        assert len(created) == 7, created
        assert not [s for s in created if "SAVEPOINT" in s or s.startswith("SELECT idempotency_records")]
        paid = api_client.post(f"/v1/payments/{payment_id}/confirm",
                               json={"member_id": member_id, "payment_password": PASSWORD})
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "succeeded"
        assert counted.take() == 4
    finally:
        counted.stop()
    assert wallet.wallet_balance(api_server.container.uow, member_id) == Money.cny(9_000)


def test_wrong_passwords_are_still_counted_and_the_fifth_locks(
    api_server: ApiServer, api_client: SignedClient
) -> None:
    member_id = _payer(api_server, api_client, 10_000, 902)
    payment_id = _order(api_client, "rt-wrong")
    for tries_left in (4, 3, 2, 1):
        wrong = api_client.post(f"/v1/payments/{payment_id}/confirm",
                                json={"member_id": member_id, "payment_password": "246801"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "payment_password_incorrect"
        assert f"({tries_left} tries left)" in wrong.json()["error"]["message"]
    locked = api_client.post(f"/v1/payments/{payment_id}/confirm",
                             json={"member_id": member_id, "payment_password": "246801"})
    assert locked.json()["error"]["code"] == "payment_password_locked"
    # The lock holds against the right password too, and nothing was paid.
    right = api_client.post(f"/v1/payments/{payment_id}/confirm",
                            json={"member_id": member_id, "payment_password": PASSWORD})
    assert right.json()["error"]["code"] == "payment_password_locked"
    assert api_client.get(f"/v1/payments/{payment_id}").json()["status"] == "created"
    assert wallet.wallet_balance(api_server.container.uow, member_id) == Money.cny(10_000)


def test_another_merchants_member_or_payment_is_not_found(
    api_server: ApiServer, api_client: SignedClient, merchant_factory: Any
) -> None:
    member_id = _payer(api_server, api_client, 10_000, 903)
    other = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key, requests.Session())
    theirs = _order(other, "rt-theirs")
    refused = other.post(f"/v1/payments/{theirs}/confirm", json={"member_id": member_id, "payment_password": PASSWORD})
    assert refused.status_code == 404
    assert refused.json()["error"]["param"] == "id"
    mine = _order(api_client, "rt-mine")
    assert other.post(f"/v1/payments/{mine}/confirm",
                      json={"member_id": member_id, "payment_password": PASSWORD}).status_code == 404
    assert wallet.wallet_balance(api_server.container.uow, member_id) == Money.cny(10_000)
