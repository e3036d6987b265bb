"""Payment queries over signed HTTP, on SQLite and PostgreSQL: filters, a cursor that holds under
inserts, the streamed CSV export, the statistics resource and /metrics.

Payments are created through the API and paid "as a bank would answer" through the payment
services on the server's own container, so their statuses and banks are real.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

from tianpay.domain.money import Money
from tianpay.entrypoints.worker import Worker, statistics_job
from tianpay.services.payments import record_attempt_failed, record_attempt_succeeded, start_attempt
from tianpay.services.statistics import record_job_runs, refresh_statistics

from .conftest import ApiServer, MerchantFactory
from .rfc9421_client import PlatformKey, SignedClient

_numbers = itertools.count(1)
STREAMED_COMPONENTS = ("@status", "content-type", "content-disposition", "request-id")


def create(client: SignedClient, amount: int = 1999, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"out_trade_no": f"q-{next(_numbers)}", "amount": amount, "currency": "CNY",
                            "method": "cashier", "subject": "一杯咖啡", **fields}
    response = client.post("/v1/payments", json=body)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


def pay(server: ApiServer, payment: dict[str, Any], bank: str) -> None:
    container = server.container
    attempt = start_attempt(container.uow, container.clock, container.ids, payment["id"],
                            channel=f"{bank.lower()}.online_banking", bank=bank)
    record_attempt_succeeded(container.uow, container.clock, payment["id"], attempt.id,
                             bank_reference=f"ref-{attempt.id}", amount=Money.cny(payment["amount"]))


def decline(server: ApiServer, payment: dict[str, Any], bank: str) -> None:
    container = server.container
    attempt = start_attempt(container.uow, container.clock, container.ids, payment["id"],
                            channel=f"{bank.lower()}.quick_pay", bank=bank)
    record_attempt_failed(container.uow, container.clock, payment["id"], attempt.id, failure_code="51")


def ids(client: SignedClient, **query: Any) -> list[str]:
    response = client.get("/v1/payments?" + urlencode({"limit": 100, **query}))
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["data"]]


def refresh(server: ApiServer) -> None:
    now = server.container.clock.now() + timedelta(minutes=2)
    refresh_statistics(server.container.uow, now, settle_margin=timedelta(minutes=1))


def test_payments_are_found_by_status_method_bank_amount_date_and_order_number(
    api_client: SignedClient, api_server: ApiServer
) -> None:
    small_hbb = create(api_client, 1_000)
    pay(api_server, small_hbb, "HBB")
    big_jhb = create(api_client, 50_000)
    pay(api_server, big_jhb, "JHB")
    named_jhb = create(api_client, 7_000, method="online_banking", bank="JHB")
    failed = create(api_client, 3_000, method="quick_pay")
    decline(api_server, failed, "HBB")
    waiting = create(api_client, 2_500)

    assert ids(api_client, status="succeeded") == [big_jhb["id"], small_hbb["id"]]
    assert ids(api_client, status="failed") == [failed["id"]]
    assert ids(api_client, method="quick_pay") == [failed["id"]]
    # The bank that took the money, or the one the payment named before anybody paid it.
    assert ids(api_client, bank="JHB") == [named_jhb["id"], big_jhb["id"]]
    # A declined attempt names no bank for the payment: it took no money there.
    assert ids(api_client, bank="HBB") == [small_hbb["id"]]
    assert ids(api_client, amount_min=2_500, amount_max=7_000) == [waiting["id"], failed["id"], named_jhb["id"]]
    assert ids(api_client, amount_min=50_000) == [big_jhb["id"]]
    assert ids(api_client, out_trade_no=waiting["out_trade_no"]) == [waiting["id"]]
    assert ids(api_client, created_before=big_jhb["created_at"]) == [small_hbb["id"]]
    assert ids(api_client, created_from=waiting["created_at"]) == [waiting["id"]]
    assert ids(api_client, status="succeeded", bank="HBB", amount_max=1_000) == [small_hbb["id"]]
    bad = api_client.get("/v1/payments?amount_min=0")
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "amount_min")


def test_the_cursor_gives_every_payment_once_while_new_ones_arrive(api_client: SignedClient) -> None:
    made = [create(api_client)["id"] for _ in range(7)]
    seen: list[str] = []
    page = api_client.get("/v1/payments?limit=3").json()
    while True:
        seen.extend(p["id"] for p in page["data"])
        # Payments created between pages are newer than the cursor: they never shift a later page.
        create(api_client)
        if not page["has_more"]:
            break
        page = api_client.get(f"/v1/payments?limit=3&starting_after={page['data'][-1]['id']}").json()
    assert seen[:7] == list(reversed(made))
    assert len(seen) == len(set(seen))


def test_a_merchant_never_sees_another_merchants_payments(
    api_client: SignedClient, api_server: ApiServer, merchant_factory: MerchantFactory
) -> None:
    mine = create(api_client, 4_000)
    pay(api_server, mine, "HBB")
    refresh(api_server)
    stranger = SignedClient(api_server.base_url, merchant_factory("ed25519"), api_server.platform_key)
    theirs = create(stranger, 1_000)
    assert ids(stranger) == [theirs["id"]]
    assert ids(stranger, out_trade_no=mine["out_trade_no"]) == []
    assert stranger.get(f"/v1/payments?starting_after={mine['id']}").status_code == 400
    export = stranger.get("/v1/payments/export.csv", verify=False)
    assert mine["id"] not in export.text
    assert [r["id"] for r in csv.DictReader(io.StringIO(export.text))] == [theirs["id"]]
    assert stranger.get("/v1/statistics").json()["totals"]["volume"] == 0
    assert api_client.get("/v1/statistics").json()["totals"]["volume"] == 4_000


def verify_streamed_signature(response: requests.Response, platform_key: PlatformKey) -> None:
    """A streamed response is signed over its header fields: verified without a body (docs/api.md)."""
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={platform_key.key_id: platform_key.public_key_pem},
                                        private_keys={}),
    )
    [result] = verifier.verify(response, require_components=STREAMED_COMPONENTS, max_age=datetime.timedelta(minutes=5))
    assert "content-digest" not in result.covered_components


def test_the_csv_export_streams_the_same_rows_as_the_list(api_client: SignedClient, api_server: ApiServer) -> None:
    made = [create(api_client, 100 * (n + 1), subject="=HYPERLINK(\"x\")" if n == 0 else "茶叶") for n in range(5)]
    pay(api_server, made[1], "JHB")
    response = api_client.get("/v1/payments/export.csv", verify=False)
    assert response.status_code == 200, response.text
    # Streamed: sent in chunks as rows come from the database, never with a length known up front.
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.headers
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "Content-Digest" not in response.headers
    verify_streamed_signature(response, api_server.platform_key)

    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    listed = api_client.get("/v1/payments?limit=100").json()["data"]
    assert [r["id"] for r in rows] == [p["id"] for p in listed]
    for exported, shown in zip(rows, listed, strict=True):
        assert (exported["out_trade_no"], int(exported["amount"]), exported["status"], exported["created_at"]) == (
            shown["out_trade_no"], shown["amount"], shown["status"], shown["created_at"]
        )
        assert int(exported["fee_amount"]) == shown["fee_amount"]
    # A subject a spreadsheet would run as a formula is defused.
    assert rows[-1]["subject"] == "'=HYPERLINK(\"x\")"

    succeeded = api_client.get("/v1/payments/export.csv?status=succeeded", verify=False)
    assert [r["id"] for r in csv.DictReader(io.StringIO(succeeded.text))] == [made[1]["id"]]
    unsigned = requests.get(api_server.url("/v1/payments/export.csv"), timeout=10)
    assert unsigned.status_code == 401


def test_statistics_show_the_days_figures_by_method_and_bank(api_client: SignedClient, api_server: ApiServer) -> None:
    for amount, bank in ((10_000, "HBB"), (20_000, "HBB"), (5_000, "JHB")):
        pay(api_server, create(api_client, amount), bank)
    failed = create(api_client, 3_000, method="quick_pay")
    decline(api_server, failed, "JHB")
    create(api_client, 1_000)
    refresh(api_server)

    response = api_client.get("/v1/statistics")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["object"], stats["timezone"], len(stats["days"])) == ("statistics", "Asia/Shanghai", 30)
    totals = stats["totals"]
    assert (totals["payment_count"], totals["succeeded_count"], totals["volume"]) == (5, 3, 35_000)
    assert totals["success_rate_bps"] == 6_000
    assert totals["fee_amount"] == 210  # 0.60 % of each
    assert totals["net_amount"] == 35_000 - 210
    by_bank = {b["bank"]: (b["payment_count"], b["volume"]) for b in stats["by_bank"]}
    assert by_bank == {"HBB": (2, 30_000), "JHB": (1, 5_000), "": (2, 0)}
    by_method = {m["method"]: m["payment_count"] for m in stats["by_method"]}
    assert by_method == {"cashier": 4, "quick_pay": 1}
    today = stats["date_to"]
    assert [d["volume"] for d in stats["days"] if d["date"] == today] == [35_000]

    only_hbb = api_client.get("/v1/statistics?bank=HBB").json()["totals"]
    assert (only_hbb["payment_count"], only_hbb["volume"]) == (2, 30_000)
    one_day = api_client.get(f"/v1/statistics?date_from={today}&date_to={today}").json()
    assert len(one_day["days"]) == 1
    backwards = api_client.get("/v1/statistics?date_from=2026-02-01&date_to=2026-01-01")
    assert (backwards.status_code, backwards.json()["error"]["param"]) == (400, "date_to")
    too_long = api_client.get("/v1/statistics?date_from=2024-01-01&date_to=2026-01-01")
    assert (too_long.status_code, too_long.json()["error"]["param"]) == (400, "date_from")


def test_metrics_expose_request_latency_payments_backlog_and_job_lag(
    api_client: SignedClient, api_server: ApiServer
) -> None:
    payment = create(api_client, 6_000)
    pay(api_server, payment, "HBB")
    api_client.get(f"/v1/payments/{payment['id']}")
    container = api_server.container
    worker = Worker(jobs=[statistics_job(container)], clock=container.clock,
                    record_runs=lambda runs: record_job_runs(container.uow, runs))
    worker.run_once()
    refresh(api_server)

    response = requests.get(api_server.url("/metrics"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert 'tianpay_http_request_duration_seconds_count{method="POST",route="/v1/payments",status="201"}' in text
    assert 'tianpay_http_request_duration_seconds_count{method="GET",route="/v1/payments/{payment_id}",status="200"}' \
        in text
    assert payment["id"] not in text
    assert 'tianpay_payments_today{bank="HBB",method="cashier",status="succeeded"}' in text
    assert "tianpay_webhook_backlog " in text
    assert 'tianpay_worker_job_lag_seconds{job="statistics"}' in text
    assert "tianpay_bank_call_duration_seconds" in text
    backlog = next(line for line in text.splitlines() if line.startswith("tianpay_webhook_backlog "))
    assert float(backlog.split()[1]) >= 1  # the payment.succeeded event waits: no webhook URL answers here
