"""Request authentication in one unit of work, on both databases (docs/performance.md).

``services.authentication.authenticate`` looks the key up, lets the edge verify the signature, and
remembers the fingerprints in the same transaction: a forged request records nothing, a replay is
refused without keeping any of its fingerprints, and the purge is asked for only once a signature
verified. Over HTTP, a signed request opens exactly one unit of work to authenticate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.api.conftest import ApiServer, SignedClient
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.tables import request_replays
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.keys import FileKeyIssuer
from tianpay.adapters.vault import AesGcmVault
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.authentication import VerificationKey, authenticate, remember_signature
from tianpay.services.merchants import KeyTools, NewMerchant, create_merchant


class Forged(Exception):
    """What the edge's check raises for a signature that does not verify."""


@pytest.fixture
def tools(tmp_path: Path, clock: SettableClock) -> KeyTools:
    return KeyTools(UlidGenerator(), clock, FileKeyIssuer(tmp_path / "merchants"),
                    AesGcmVault.from_key_file(tmp_path / "keys" / "vault.key"))


def _stored_fingerprints(uow_factory: UnitOfWorkFactory) -> int:
    with uow_factory() as uow:
        return int(uow.connection.execute(select(func.count()).select_from(request_replays)).scalar_one())  # type: ignore[attr-defined]


def _accepting(fingerprints: Sequence[str]) -> Any:
    def check(key: VerificationKey) -> Sequence[str]:
        return fingerprints
    return check


def test_a_verified_request_is_remembered_and_its_replay_refused(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    key_id = create_merchant(uow_factory, tools, NewMerchant("Tea shop")).key.key_id
    expires = clock.now() + timedelta(minutes=5)
    first = authenticate(uow_factory, tools.vault, key_id, clock.now(), _accepting(["b:1", "n:1"]), expires)
    assert first.key is not None
    assert first.key.key_id == key_id
    assert not first.is_replayed
    again = authenticate(uow_factory, tools.vault, key_id, clock.now(), _accepting(["b:2", "n:1"]), expires)
    assert again.is_replayed
    # The refused request's new fingerprint was rolled back with its unit of work.
    assert remember_signature(uow_factory, ["b:2"], expires)


def test_a_forged_request_records_no_fingerprint(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    key_id = create_merchant(uow_factory, tools, NewMerchant("Tea shop")).key.key_id
    before = _stored_fingerprints(uow_factory)

    def forged(key: VerificationKey) -> Sequence[str]:
        raise Forged

    purges_asked: list[datetime] = []

    def purge_due() -> datetime:
        purges_asked.append(clock.now())
        return clock.now()

    with pytest.raises(Forged):
        authenticate(uow_factory, tools.vault, key_id, clock.now(), forged, clock.now() + timedelta(minutes=5),
                     purge_due=purge_due)
    assert _stored_fingerprints(uow_factory) == before
    # A forged request cannot claim the periodic purge (and so starve it).
    assert purges_asked == []


def test_an_unknown_or_expired_key_is_not_checked(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    checked: list[str] = []

    def check(key: VerificationKey) -> Sequence[str]:
        checked.append(key.key_id)
        return ["b:x"]

    expires = clock.now() + timedelta(minutes=5)
    assert authenticate(uow_factory, tools.vault, "key_nope", clock.now(), check, expires).key is None
    assert checked == []
    assert _stored_fingerprints(uow_factory) == 0


def test_the_purge_runs_in_the_same_transaction_once_the_signature_verified(
    uow_factory: UnitOfWorkFactory, tools: KeyTools, clock: SettableClock
) -> None:
    key_id = create_merchant(uow_factory, tools, NewMerchant("Tea shop")).key.key_id
    old = clock.now() + timedelta(minutes=5)
    assert remember_signature(uow_factory, ["b:old"], old)
    later = old + timedelta(seconds=1)
    found = authenticate(uow_factory, tools.vault, key_id, later, _accepting(["b:new"]), later + timedelta(minutes=5),
                         purge_due=lambda: later)
    assert not found.is_replayed
    # b:old expired before the purge time and is gone; b:new is kept.
    assert _stored_fingerprints(uow_factory) == 1
    assert remember_signature(uow_factory, ["b:old"], later + timedelta(minutes=5))


class UnitsOfWork:
    """Counts the connections an engine hands out (one per unit of work) and the statements run."""

    def __init__(self, engine: Any) -> None:
        self.opened = 0
        self.statements = 0
        event.listen(engine, "engine_connect", self._connected)
        event.listen(engine, "before_cursor_execute", self._executed)

    def _connected(self, *_args: Any) -> None:
        self.opened += 1

    def _executed(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE (adapters/db/engine.py) is how a unit of work starts there, not a
        # statement of the request; PostgreSQL's BEGIN never passes through this event.
        if not statement.startswith("BEGIN"):
            self.statements += 1

    def reset(self) -> None:
        self.opened = self.statements = 0


def test_a_signed_read_opens_one_unit_of_work_to_authenticate_and_one_to_answer(
    api_server: ApiServer, api_client: SignedClient
) -> None:
    created = api_client.post("/v1/payments", json={
        "out_trade_no": "uow-1", "amount": 100, "currency": "CNY", "method": "cashier", "subject": "茶",
    })
    assert created.status_code == 201, created.text
    counted = UnitsOfWork(api_server.container.engine)
    try:
        fetched = api_client.get(f"/v1/payments/{created.json()['id']}")
        assert fetched.status_code == 200
        # Authentication: the key with its merchant, then the fingerprints (no savepoint); the read:
        # the payment and its attempts.
        assert (counted.opened, counted.statements) == (2, 4)
    finally:
        event.remove(api_server.container.engine, "engine_connect", counted._connected)
        event.remove(api_server.container.engine, "before_cursor_execute", counted._executed)
