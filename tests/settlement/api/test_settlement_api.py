"""Settlements and the CSV statement over the signed merchant API, on SQLite and PostgreSQL.

The day's trade is made through the real services with a settable clock set to yesterday (in
Shanghai), the date is settled, and the merchant reads it back through the signed API exactly as
its own client would: every response, the CSV included, carries the platform's verified signature.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from tests.api.conftest import ApiServer, MerchantCredentials, MerchantFactory
from tests.api.rfc9421_client import SignedClient
from tests.members.conftest import build_tools
from tests.settlement.conftest import Shop
from tests.wallet.conftest import WalletWorld, add_payer, fund
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.domain.settlement import SHANGHAI


@pytest.fixture
def settled_day(api_server: ApiServer, merchant_credentials: MerchantCredentials) -> tuple[date, str]:
    """Yesterday's trade of the signed merchant (two wallet payments, one partial refund), settled."""
    now = datetime.now(UTC)
    yesterday = now.astimezone(SHANGHAI).date() - timedelta(days=1)
    clock = SettableClock(datetime.combine(yesterday, datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=9))
    engine, ids = api_server.container.engine, UlidGenerator()
    tools = build_tools(engine, clock)

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(engine, clock, ids)

    merchant_id = merchant_credentials.merchant_id
    world = WalletWorld(uow, tools, merchant_id, add_payer(uow, tools, merchant_id))
    fund(world, 1_000_000)
    shop = Shop(world, clock)
    first = shop.pay(10_000)  # fee 60 at the signed merchant's 0.60 %
    shop.at(clock.now() + timedelta(hours=1))
    shop.pay(25_050)  # fee 150 (150.3)
    shop.at(clock.now() + timedelta(hours=1))
    shop.refund(first, 4_000, "r-api-1")  # fee returned 24
    shop.at(now)
    outcome = shop.settle(yesterday)
    assert outcome.settlement is not None
    return yesterday, outcome.settlement.id


def test_the_signed_list_shows_the_settlement_with_its_totals(
    api_client: SignedClient, settled_day: tuple[date, str]
) -> None:
    day, settlement_id = settled_day

    listed = api_client.get("/v1/settlements")
    ranged = api_client.get(f"/v1/settlements?from={day.isoformat()}&to={day.isoformat()}&limit=5")
    later = api_client.get(f"/v1/settlements?from={(day + timedelta(days=1)).isoformat()}")
    one = api_client.get(f"/v1/settlements/{settlement_id}")

    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["has_more"] is False
    assert [s["id"] for s in body["data"]] == [settlement_id]
    assert [s["id"] for s in ranged.json()["data"]] == [settlement_id]
    assert later.json()["data"] == []
    settlement = one.json()
    assert settlement["object"] == "settlement"
    assert settlement["business_date"] == day.isoformat()
    assert settlement["status"] == "settled"
    assert (settlement["gross"], settlement["refunds"], settlement["fees"]) == (35_050, 4_000, 60 + 150 - 24)
    assert settlement["net"] == 35_050 - 4_000 - 186
    assert settlement["line_count"] == 3


def test_the_balance_shows_the_settled_net_as_available(
    api_client: SignedClient, settled_day: tuple[date, str]
) -> None:
    balance = api_client.get("/v1/balance").json()

    assert balance["pending"]["amount"] == 0
    assert balance["available"]["amount"] == 35_050 - 4_000 - 186


def test_the_statement_is_a_signed_csv_whose_lines_sum_to_its_totals_row(
    api_client: SignedClient, settled_day: tuple[date, str]
) -> None:
    day, settlement_id = settled_day

    response = api_client.get(f"/v1/statements/{day.isoformat()}")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    lines, totals = rows[:-1], rows[-1]
    assert [row["kind"] for row in lines] == ["payment", "payment", "refund"]
    assert lines[2]["reference"] == "r-api-1"
    assert totals["row"] == "totals"
    assert totals["id"] == settlement_id
    for column in ("gross", "refunds", "fees", "net"):
        assert sum(int(row[column]) for row in lines) == int(totals[column])
    assert int(totals["net"]) == 35_050 - 4_000 - 186


def test_a_date_without_a_settlement_or_a_malformed_one_answers_in_the_error_envelope(
    api_client: SignedClient, settled_day: tuple[date, str]
) -> None:
    day, _ = settled_day

    missing = api_client.get(f"/v1/statements/{(day - timedelta(days=30)).isoformat()}")
    malformed = api_client.get("/v1/statements/2026-13-40")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["param"] == "date"


def test_another_merchant_sees_none_of_it(
    api_server: ApiServer, merchant_factory: MerchantFactory, settled_day: tuple[date, str]
) -> None:
    day, settlement_id = settled_day
    other = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key, requests.Session())

    assert other.get(f"/v1/settlements/{settlement_id}").status_code == 404
    assert other.get(f"/v1/statements/{day.isoformat()}").status_code == 404
    assert other.get("/v1/settlements").json()["data"] == []
