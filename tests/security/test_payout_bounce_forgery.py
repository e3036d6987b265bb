"""Forged and replayed BCB payout bounces (``300001``, GBK XML) at the platform's notify endpoint.

A payout that BCB paid is the target: a bounce notice signed with a key that is not BCB's, one whose
``SIGNED_MSG`` is garbled, one whose amount was changed after BCB signed it, and one with no signature
must each be refused and change no row of any table. A notice signed with BCB's own key (read from the
simulated bank's directory, as BCB would sign it) returns the money once; delivered again, nothing
changes and the merchant hears ``payout.returned`` once.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.rfc9421_client import SignedClient
from tests.gateway.conftest import wait_until
from tests.payouts.conftest import SHOP_BCB, PayoutWorld, payout_data_dir, payout_world
from tests.payouts.test_payouts_http import (
    Platform,
    payout_body,
    platform,
    run_payout_jobs,
    shop,
    status_of,
)
from tianpay.channels.bcb import signing, wire
from tianpay.channels.bcb.onboarding import load_bcb_config

from .conftest import changed_tables, database_snapshot

pytestmark = pytest.mark.e2e
# The payout world, its onboarded platform and the funded shop are the payout tests' module fixtures.
__all__ = ["payout_data_dir", "payout_world", "platform", "shop"]

CONTENT_TYPE = "text/xml; charset=GBK"


def _bcb_key(world: PayoutWorld) -> rsa.RSAPrivateKey:
    (path,) = [p for p in world.data_dir.rglob("signing_key.pem") if "bcb" in str(p).lower()]
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _bounce(user_name: str, payout_id: str, amount_minor: int) -> ET.Element:
    body = ET.Element("BODY")
    returned = ET.SubElement(body, "RETURNTRANS")
    for name, value in (("QUERY_SN", "REQ-SEC-1"), ("SN", payout_id), ("ACCOUNT_NO", "623099*********0033"),
                        ("AMOUNT", str(amount_minor)), ("RETURN_CODE", "3028"), ("RETURN_MSG", "户名不符"),
                        ("RETURN_SN", "RT-SEC-1"), ("RETURN_TIME", "20261127120000")):
        ET.SubElement(returned, name).text = value
    return wire.document(wire.TrxCode.BOUNCE, user_name, "REQ-SEC-1", body, RET_CODE="0000", ERR_MSG="退票")


def _deliver(platform: Platform, body: bytes) -> httpx.Response:
    return httpx.post(f"{platform.base_url}/channels/BCB/payouts/notify", content=body,
                      headers={"Content-Type": CONTENT_TYPE}, timeout=10)


def _is_accepted(response: httpx.Response) -> bool:
    return response.status_code == 200 and b"<RET_CODE>0000</RET_CODE>" in response.content


def _paid_at_bcb(platform: Platform, shop: SignedClient) -> tuple[str, int]:
    amount_minor = 12_300
    payout = shop.post("/v1/payouts", json=payout_body("SEC-P-BOUNCE", amount_minor, SHOP_BCB)).json()
    assert payout["bank"] == "BCB"

    def settled() -> bool:
        run_payout_jobs(platform)
        return status_of(shop, payout["id"]) == "succeeded"

    wait_until(settled, what="the BCB payout succeeded")
    return payout["id"], amount_minor


def test_forged_bcb_bounces_change_nothing_and_a_genuine_one_replayed_returns_the_money_once(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld, payout_data_dir: Path
) -> None:
    container = platform.container
    payout_id, amount_minor = _paid_at_bcb(platform, shop)
    config = load_bcb_config(payout_data_dir)
    assert config is not None
    user_name = config.user_name
    balance_before = shop.get("/v1/balance").json()
    bcb_key = _bcb_key(payout_world)

    genuine = signing.sign(_bounce(user_name, payout_id, amount_minor), bcb_key)
    garbled = genuine.replace(b"<SIGNED_MSG>", b"<SIGNED_MSG>00", 1)
    altered = genuine.replace(f"<AMOUNT>{amount_minor}<".encode(), f"<AMOUNT>{amount_minor * 10}<".encode(), 1)
    forgeries = {
        "signed with another key": signing.sign(
            _bounce(user_name, payout_id, amount_minor), rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "a garbled SIGNED_MSG": garbled,
        "an amount changed after signing": altered,
        "no signature": signing.serialise(_bounce(user_name, payout_id, amount_minor)),
    }
    before = database_snapshot(container.engine)
    for what, forged in forgeries.items():
        assert forged != genuine, what
        assert not _is_accepted(_deliver(platform, forged)), what
        assert changed_tables(before, database_snapshot(container.engine)) == [], what
    assert status_of(shop, payout_id) == "succeeded"

    assert _is_accepted(_deliver(platform, genuine))
    assert status_of(shop, payout_id) == "returned"
    after_first = database_snapshot(container.engine)
    for _ in range(2):
        assert _is_accepted(_deliver(platform, genuine))
    assert changed_tables(after_first, database_snapshot(container.engine)) == []
    assert shop.get("/v1/balance").json()["available"]["amount"] == (
        balance_before["available"]["amount"] + amount_minor
    )
    with container.uow() as uow:
        events = uow.outbox.list_events(shop.credentials.merchant_id, limit=100).events
        assert [e.type.value for e in events].count("payout.returned") == 1
        assert uow.ledger.verify() is None
