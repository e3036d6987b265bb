"""Date and date-time query parameters accept only the documented ISO 8601 forms (docs/api.md).

``created_from``/``created_before`` are ISO 8601 date-times with a time zone; ``date_from``/``date_to``
of the statistics and ``from``/``to`` of the settlements are ``YYYY-MM-DD``. A Unix timestamp, a
date-time without a zone, a compact or week date answers ``400 parameter_invalid`` naming the
parameter and the expected form. ``expires_at`` in the body of ``POST /v1/payments`` follows the same
rule. The SDK, which passes a merchant's strings through, still works.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from tianpay_sdk import InvalidRequestError, TianpayClient

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import MerchantCredentials, SignedClient

REFUSED = [
    ("/v1/payments?created_from=0", "created_from"),
    ("/v1/payments?created_before=1700000000", "created_before"),
    ("/v1/payments?created_from=1700000000.5", "created_from"),
    ("/v1/payments?created_from=2026-11-27", "created_from"),
    ("/v1/payments?created_from=2026-11-27T00:00:00", "created_from"),
    ("/v1/payments?created_from=20261127T000000Z", "created_from"),
    ("/v1/payments?created_before=2026-13-01T00:00:00Z", "created_before"),
    ("/v1/payments/export.csv?created_from=0", "created_from"),
    ("/v1/statistics?date_to=0", "date_to"),
    ("/v1/statistics?date_from=86400", "date_from"),
    ("/v1/statistics?date_from=20261127", "date_from"),
    ("/v1/statistics?date_to=2026-11-27T00:00:00", "date_to"),
    ("/v1/statistics?date_to=2026-W48-5", "date_to"),
    ("/v1/settlements?from=0", "from"),
    ("/v1/settlements?to=20261130", "to"),
    ("/v1/statements/20261126", "date"),
]


@pytest.fixture
def merchant_credentials(merchant_factory: MerchantFactory) -> MerchantCredentials:
    """An ed25519 merchant: generated in microseconds, where an RSA key takes a while on two cores."""
    return merchant_factory("ed25519")


@pytest.mark.parametrize(("target", "param"), REFUSED)
def test_a_timestamp_or_undocumented_date_form_is_refused_naming_the_parameter(
    api_client: SignedClient, target: str, param: str
) -> None:
    response = api_client.get(target)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "parameter_invalid", param)
    # The message says what is expected, never what was sent.
    assert ("YYYY-MM-DD" in error["message"]) != ("ISO 8601 date-time" in error["message"])


def test_an_unescaped_plus_in_the_offset_is_explained(api_client: SignedClient) -> None:
    # A client that forgets to escape "+" sends "2026-11-01T00:00:00 08:00".
    response = api_client.get("/v1/payments?created_from=2026-11-01T00:00:00+08:00")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "created_from"
    assert "%2B" in error["message"]


@pytest.mark.parametrize(
    "moment",
    [
        "2026-11-01T00:00:00+08:00",
        "2026-11-01T00:00:00.123456+08:00",
        "2026-10-31T16:00:00Z",
        "2026-10-31t16:00:00z",
        "2026-11-01T00:00+0800",
    ],
)
def test_iso_8601_date_times_with_a_zone_are_accepted(api_client: SignedClient, moment: str) -> None:
    response = api_client.get(f"/v1/payments?created_from={quote(moment)}&created_before={quote(moment)}")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_documented_dates_are_accepted(api_client: SignedClient) -> None:
    stats = api_client.get("/v1/statistics?date_from=2026-10-29&date_to=2026-11-27")
    assert stats.status_code == 200, stats.text
    assert (stats.json()["date_from"], stats.json()["date_to"]) == ("2026-10-29", "2026-11-27")
    settlements = api_client.get("/v1/settlements?from=2026-11-01&to=2026-11-30")
    assert settlements.status_code == 200, settlements.text
    assert settlements.json()["data"] == []


def test_the_sdk_passes_iso_strings_through_and_hears_the_refusal(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    assert merchant_credentials.private_key_pem is not None
    client = TianpayClient(
        api_server.base_url, merchant_credentials.merchant_id, merchant_credentials.key_id,
        merchant_credentials.private_key_pem, platform_public_key=api_server.platform_key.public_key_pem,
        platform_key_id=api_server.platform_key.key_id, max_retries=0,
    )  # fmt: skip
    shanghai = timezone(timedelta(hours=8))
    since = datetime.now(UTC).astimezone(shanghai) - timedelta(days=1)
    with client:
        created = client.payments.create(
            out_trade_no="date-filter-1", amount=1999, currency="CNY", method="cashier", subject="一杯咖啡"
        )
        found = client.payments.list(created_from=since.isoformat(), created_before=None)
        assert [p["id"] for p in found["data"]] == [created["id"]]
        assert client.settlements.list(**{"from": "2026-11-01", "to": "2026-11-30"})["data"] == []
        with pytest.raises(InvalidRequestError) as refused:
            client.payments.list(created_from=0)
    assert (refused.value.http_status, refused.value.param) == (400, "created_from")


def payment_body(out_trade_no: str, expires_at: object) -> dict[str, object]:
    return {
        "out_trade_no": out_trade_no,
        "amount": 1999,
        "currency": "CNY",
        "method": "cashier",
        "subject": "一杯咖啡",
        "expires_at": expires_at,
    }


@pytest.mark.parametrize(
    "expires_at",
    [
        0,
        1700000000,
        1700000000.5,
        "0",
        "1700000000",
        "2026-11-27",
        "2026-11-27T10:00:00",
        "20261127T100000Z",
        True,
        {"at": "2026-11-27T10:00:00Z"},
    ],
)
def test_an_expires_at_that_is_not_an_iso_date_time_with_a_zone_is_refused_and_stores_nothing(
    api_client: SignedClient, expires_at: object
) -> None:
    response = api_client.post("/v1/payments", json=payment_body("expiry-bad", expires_at))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "parameter_invalid",
        "expires_at",
    )
    assert "ISO 8601 date-time" in error["message"]
    assert api_client.get("/v1/payments").json()["data"] == []


@pytest.mark.parametrize("zone", [timezone(timedelta(hours=8)), UTC])
def test_an_expires_at_with_a_zone_is_taken_as_that_instant(api_client: SignedClient, zone: timezone) -> None:
    moment = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).astimezone(zone)
    text = moment.isoformat().replace("+00:00", "Z")
    response = api_client.post("/v1/payments", json=payment_body("expiry-ok", text))
    assert response.status_code == 201, response.text
    stored = datetime.fromisoformat(response.json()["expires_at"].replace("Z", "+00:00"))
    assert stored == moment


def test_the_sdk_sends_expires_at_as_an_iso_string(
    api_server: ApiServer, merchant_credentials: MerchantCredentials
) -> None:
    assert merchant_credentials.private_key_pem is not None
    client = TianpayClient(
        api_server.base_url, merchant_credentials.merchant_id, merchant_credentials.key_id,
        merchant_credentials.private_key_pem, platform_public_key=api_server.platform_key.public_key_pem,
        platform_key_id=api_server.platform_key.key_id, max_retries=0,
    )  # fmt: skip
    # As the demo writes it (entrypoints/demo.py): an aware datetime's isoformat(), microseconds and all.
    moment = datetime.now(UTC) + timedelta(minutes=10)
    with client:
        created = client.payments.create(
            out_trade_no="expiry-sdk",
            amount=1999,
            currency="CNY",
            method="cashier",
            subject="一杯咖啡",
            expires_at=moment.isoformat(),
        )
        # Payments show times to the millisecond (webhook bodies do the same).
        stored = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
        assert stored == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        with pytest.raises(InvalidRequestError) as refused:
            client.payments.create(
                out_trade_no="expiry-sdk-2",
                amount=1999,
                currency="CNY",
                method="cashier",
                subject="一杯咖啡",
                expires_at=int(moment.timestamp()),
            )
    assert (refused.value.http_status, refused.value.param) == (400, "expires_at")
