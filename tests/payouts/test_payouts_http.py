"""Payouts end to end over HTTP, on both databases: a real platform server, the real bank world
(HBB, JHB, BCB), the signed merchant API, the bank's notices to ``/channels/{bank}/notify``, and a
member's withdrawal through the wallet pages. The worker's payout jobs run in the test's thread."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.rfc9421_client import SignedClient
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import form_ending, wait_until
from tests.payouts.conftest import LI_NA_JHB, SHOP_BCB, WANG_FANG_HBB, PayoutWorld, funded_merchant_client
from tests.wallet.test_wallet_pages import Platform, live_wallet_platform
from tianpay.domain.money import Money
from tianpay.domain.operator import Operator, Role
from tianpay.domain.posting_rules import bank_payment_succeeded, wallet_top_up_succeeded
from tianpay.domain.settlement import business_date_of
from tianpay.entrypoints.console.routes import console_tools
from tianpay.entrypoints.worker import payout_jobs
from tianpay.services import console, payouts, settlement
from tianpay.services.housekeeping import HousekeepingPolicy
from tianpay.services.operators import create_operator

pytestmark = pytest.mark.e2e

FUNDS_MINOR = 5_000_000
# 王芳 (BANKS.md "Test customers"): she signs up for a wallet and withdraws to her HBB card.
WANG_FANG_ID = "12010119900725002X"
WANG_FANG_PHONE = "13800138002"
WALLET_PHONE = "13700137022"
LOGIN_PASSWORD = "abc12345"
PAYMENT_PASSWORD = "135790"


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, payout_data_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    with live_wallet_platform(database_url, payout_data_dir) as platform:
        yield platform


@pytest.fixture(scope="module")
def shop(platform: Platform) -> Iterator[SignedClient]:
    """A merchant with a signed client and ¥50,000 in its available balance."""
    client = funded_merchant_client(
        platform.container, platform.base_url, "津门好物商城", bank="BCB", funds_minor=FUNDS_MINOR
    )
    yield client
    client.session.close()


def run_payout_jobs(platform: Platform) -> dict[str, int]:
    return {job.name: job.run_once(platform.container.clock.now()) for job in payout_jobs(platform.container)}


def payout_body(number: str, minor: int, payee: tuple[str, str, str]) -> dict[str, Any]:
    bank, account_no, name = payee
    return {"out_payout_no": number, "amount": minor, "currency": "CNY", "purpose": "货款结算",
            "account": {"bank": bank, "account_no": account_no, "account_name": name}}


def status_of(shop: SignedClient, payout_id: str) -> str:
    return str(shop.get(f"/v1/payouts/{payout_id}").json()["status"])


def test_a_merchant_payout_is_answered_masked_batched_and_sent(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    body = payout_body("API-P-1", 23_400, WANG_FANG_HBB)
    created = shop.post("/v1/payouts", json=body)
    assert created.status_code == 201, created.text
    payout = created.json()
    assert payout["status"] == "created"
    assert payout["bank"] == "HBB"
    assert payout["account"] == {"bank": "HBB", "account_no_masked": "621799*********0022", "account_name": "王芳"}
    assert WANG_FANG_HBB[1] not in created.text
    repeat = shop.post("/v1/payouts", json=body)
    assert repeat.status_code == 201
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json()["id"] == payout["id"]
    conflict = shop.post("/v1/payouts", json={**body, "amount": 23_401})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert run_payout_jobs(platform)["payout_dispatch"] >= 1
    wait_until(lambda: status_of(shop, payout["id"]) == "succeeded", what="the payout succeeded")
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 23_400
    shown = shop.get(f"/v1/payouts/{payout['id']}").json()
    assert shown["batch_id"].startswith("pob_")
    assert shown["succeeded_at"]
    listed = shop.get("/v1/payouts?limit=5").json()
    assert payout["id"] in [p["id"] for p in listed["data"]]


def test_a_payout_whose_answer_was_lost_is_completed_by_the_banks_notice_without_a_query(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    payout = shop.post("/v1/payouts", json=payout_body("API-P-96", 10_096, WANG_FANG_HBB)).json()
    dispatched = {job.name: job for job in payout_jobs(platform.container)}["payout_dispatch"]
    assert dispatched.run_once(platform.clock.now()) == 1
    # Magic 96: HBB moved the money but its answer never came; its notice to /channels/HBB/payouts/notify does.
    wait_until(lambda: status_of(shop, payout["id"]) == "succeeded", what="the notice recorded")
    events = [t.event for t in payouts.payout_transitions_of(platform.container.uow, payout["id"])]
    # The notice may come before or after the submit's timeout was recorded as unknown.
    assert events[:2] == ["created", "batched"]
    assert events[-1] == "succeeded"
    batch_id = shop.get(f"/v1/payouts/{payout['id']}").json()["batch_id"]
    with platform.container.uow() as uow:
        batch = uow.payouts.get_batch(batch_id)
    assert batch is not None
    assert batch.query_count == 0
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 10_096


def test_a_payout_beyond_the_available_balance_is_refused_with_insufficient_balance(
    platform: Platform, shop: SignedClient
) -> None:
    refused = shop.post("/v1/payouts", json=payout_body("API-P-BIG", FUNDS_MINOR + 1, WANG_FANG_HBB))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "insufficient_balance"
    assert shop.get("/v1/payouts?limit=100").json()["data"][0]["out_payout_no"] != "API-P-BIG"


def test_a_payout_repeated_after_housekeeping_purged_its_record_is_a_409_and_pays_nothing_more(
    platform: Platform, shop: SignedClient
) -> None:
    body = payout_body("API-P-LATE", 1_200, WANG_FANG_HBB)
    first = shop.post("/v1/payouts", json=body)
    assert first.status_code == 201, first.text
    balance_after_first = shop.get("/v1/balance").json()
    container = platform.container
    later = container.clock.now() + HousekeepingPolicy().idempotency_retention + timedelta(days=1)
    # Only the idempotency purge of the housekeeping job: the whole job at that time would also end the
    # wallet session this module's browser keeps.
    with container.uow() as uow:
        assert uow.housekeeping.purge_idempotency_records(later, 10_000) >= 1
        uow.commit()

    for repeat in (body, {**body, "amount": 1_201}):
        response = shop.post("/v1/payouts", json=repeat)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "idempotency_error", "idempotency_record_expired", "out_payout_no"
        )
        assert first.json()["id"] in error["message"]
    assert shop.get("/v1/balance").json() == balance_after_first
    numbers = [p["out_payout_no"] for p in shop.get("/v1/payouts?limit=100").json()["data"]]
    assert numbers.count("API-P-LATE") == 1


def test_a_payout_to_the_settlement_account_needs_one_to_be_set(shop: SignedClient) -> None:
    refused = shop.post("/v1/payouts", json={"out_payout_no": "API-P-STL", "amount": 100, "currency": "CNY",
                                             "purpose": "提现", "to_settlement_account": True})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "payee_account_invalid"
    both = shop.post("/v1/payouts", json={**payout_body("API-P-BOTH", 100, WANG_FANG_HBB),
                                          "to_settlement_account": True})
    assert both.status_code == 400


def test_a_merchant_payout_to_its_bcb_account_arrives_there(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    assert "BCB" in platform.container.channels.payout_banks(), "the BCB payout adapter is not registered yet"
    before = payout_world.balance("BCB", SHOP_BCB[1])
    payout = shop.post("/v1/payouts", json=payout_body("API-P-BCB", 45_600, SHOP_BCB)).json()
    assert payout["bank"] == "BCB"
    run_payout_jobs(platform)
    wait_until(lambda: _settle(platform, shop, payout["id"]) == "succeeded", what="the BCB payout succeeded")
    assert payout_world.balance("BCB", SHOP_BCB[1]) == before + 45_600


def test_a_cross_bank_payout_to_a_jhb_account_arrives_through_bcb_and_the_clearing(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    assert "BCB" in platform.container.channels.payout_banks(), "the BCB payout adapter is not registered yet"
    before = payout_world.balance("JHB", LI_NA_JHB[1])
    payout = shop.post("/v1/payouts", json=payout_body("API-P-JHB", 7_800, LI_NA_JHB)).json()
    assert payout["bank"] == "BCB"
    run_payout_jobs(platform)
    wait_until(lambda: _settle(platform, shop, payout["id"]) == "succeeded", what="the cross-bank payout succeeded")
    wait_until(lambda: payout_world.balance("JHB", LI_NA_JHB[1]) == before + 7_800, what="李娜 credited at JHB")


def test_a_cross_bank_payout_to_the_wrong_name_bounces_and_the_money_comes_back(
    platform: Platform, shop: SignedClient
) -> None:
    assert "BCB" in platform.container.channels.payout_banks(), "the BCB payout adapter is not registered yet"
    balance_before = shop.get("/v1/balance").json()
    payout = shop.post("/v1/payouts", json=payout_body("API-P-RET", 6_600, ("JHB", LI_NA_JHB[1], "王五"))).json()
    run_payout_jobs(platform)
    # BCB answers 0000, then the receiving bank returns it and BCB posts 300001 to /channels/BCB/payouts/notify.
    wait_until(lambda: _settle(platform, shop, payout["id"]) == "returned", what="the payout bounced")
    shown = shop.get(f"/v1/payouts/{payout['id']}").json()
    assert shown["returned_at"]
    assert shown["succeeded_at"]
    assert shop.get("/v1/balance").json() == balance_before
    with platform.container.uow() as uow:
        assert uow.ledger.verify() is None


def _settle(platform: Platform, shop: SignedClient, payout_id: str) -> str:
    """The payout's status after one more query round, for banks that answer by query only."""
    status = status_of(shop, payout_id)
    if status in ("processing", "created"):
        platform.clock.advance(__import__("datetime").timedelta(minutes=3))
        run_payout_jobs(platform)
        status = status_of(shop, payout_id)
    return status


# ---- banks switched off in the operator console -------------------------------------------------------------


@pytest.fixture
def switch(platform: Platform) -> Iterator[Callable[[str, bool], None]]:
    """Switches a bank off or on as an admin does in the console; every bank is back on afterwards."""
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    touched: set[str] = set()

    def set_bank(bank: str, is_enabled: bool) -> None:
        touched.add(bank)
        console.set_channel(container.uow, console_tools(container), admin, bank, is_enabled=is_enabled,
                            cost_bps=None, reason="maintenance window" if not is_enabled else "maintenance over")

    yield set_bank
    for bank in touched:
        set_bank(bank, True)


def test_a_payout_to_an_account_at_a_switched_off_bank_is_refused_up_front_and_changes_nothing(
    platform: Platform, shop: SignedClient, switch: Callable[[str, bool], None], payout_world: PayoutWorld
) -> None:
    balance_before = shop.get("/v1/balance").json()
    body = payout_body("API-P-OFF-HBB", 4_200, WANG_FANG_HBB)
    switch("HBB", False)
    refused = shop.post("/v1/payouts", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "bank_switched_off",
                                                              "account.bank")
    assert "HBB" in error["message"]
    assert WANG_FANG_HBB[1] not in refused.text
    assert shop.get("/v1/balance").json() == balance_before
    assert "API-P-OFF-HBB" not in [p["out_payout_no"] for p in shop.get("/v1/payouts?limit=100").json()["data"]]
    with platform.container.uow() as uow:
        assert uow.ledger.verify() is None

    # The refusal kept nothing, not even the number: once the bank is back, the same request is a new payout.
    switch("HBB", True)
    before = payout_world.balance("HBB", WANG_FANG_HBB[1])
    created = shop.post("/v1/payouts", json=body)
    assert created.status_code == 201, created.text
    assert created.headers.get("Idempotent-Replayed") != "true"
    run_payout_jobs(platform)
    wait_until(lambda: _settle(platform, shop, created.json()["id"]) == "succeeded", what="the payout succeeded")
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == before + 4_200


def test_a_bank_switched_off_stops_the_payouts_that_would_go_through_it_and_no_others(
    platform: Platform, shop: SignedClient, switch: Callable[[str, bool], None]
) -> None:
    assert "BCB" in platform.container.channels.payout_banks(), "the BCB payout adapter is not registered yet"
    balance_before = shop.get("/v1/balance").json()
    switch("BCB", False)
    # A JHB account is paid from BCB through the clearing: not rerouted to another reserve, refused.
    through_bcb = shop.post("/v1/payouts", json=payout_body("API-P-OFF-JHB", 3_300, LI_NA_JHB))
    assert through_bcb.status_code == 400
    assert through_bcb.json()["error"]["code"] == "bank_switched_off"
    assert "BCB" in through_bcb.json()["error"]["message"]
    to_bcb = shop.post("/v1/payouts", json=payout_body("API-P-OFF-BCB", 3_300, SHOP_BCB))
    assert to_bcb.json()["error"]["code"] == "bank_switched_off"
    assert shop.get("/v1/balance").json() == balance_before
    # An HBB account is paid from HBB's own reserve, which is on.
    at_hbb = shop.post("/v1/payouts", json=payout_body("API-P-ON-HBB", 3_300, WANG_FANG_HBB))
    assert at_hbb.status_code == 201, at_hbb.text
    assert at_hbb.json()["bank"] == "HBB"
    run_payout_jobs(platform)
    wait_until(lambda: _settle(platform, shop, at_hbb.json()["id"]) == "succeeded", what="the HBB payout succeeded")

    # Switched off, JHB takes no payout to its accounts either, though none would go through a JHB channel.
    switch("BCB", True)
    switch("JHB", False)
    to_jhb = shop.post("/v1/payouts", json=payout_body("API-P-OFF-JHB2", 3_300, LI_NA_JHB))
    assert to_jhb.status_code == 400
    assert to_jhb.json()["error"]["code"] == "bank_switched_off"


# ---- a member's withdrawal through the wallet pages ------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=True) as client:
        yield client


def _platform_sms(browser: httpx.Client, phone: str) -> str:
    messages = browser.get("/wallet/_dev/sms", params={"phone": phone}).json()["messages"]
    found = re.search(r"\d{6}", messages[0]["text"])
    assert found is not None
    return found.group(0)


def _bank_sms(payout_world: PayoutWorld, bank: str, phone: str) -> str:
    return str(httpx.get(payout_world.urls[bank] + "/_sim/sms", params={"phone": phone}, timeout=10).json()[0]["code"])


def test_a_member_withdraws_from_the_wallet_to_a_bound_card_with_the_payment_password(
    platform: Platform, browser: httpx.Client, payout_world: PayoutWorld
) -> None:
    form = form_ending(browser.get("/wallet/register"), "/wallet/register/code")
    register = form_ending(browser.post(form.action, data={**form.fields, "phone": WALLET_PHONE}), "/wallet/register")
    signed_up = browser.post(register.action, data={
        **register.fields, "sms_code": _platform_sms(browser, WALLET_PHONE), "login_password": LOGIN_PASSWORD,
    })
    real_name = form_ending(signed_up, "/wallet/real-name")
    browser.post(real_name.action, data={**real_name.fields, "name": "王芳", "id_number": WANG_FANG_ID})
    apply = form_ending(browser.get("/wallet/cards"), "/wallet/cards")
    code_page = browser.post(apply.action, data={
        **apply.fields, "card_number": WANG_FANG_HBB[1], "phone": WANG_FANG_PHONE,
    })
    confirm = form_ending(code_page, "/confirm")
    after_bind = browser.post(confirm.action, data={
        **confirm.fields, "sms_code": _bank_sms(payout_world, "HBB", WANG_FANG_PHONE),
    })
    password = form_ending(after_bind, "/wallet/payment-password")
    browser.post(password.action, data={
        **password.fields, "payment_password": PAYMENT_PASSWORD, "payment_password_again": PAYMENT_PASSWORD,
    })
    member_id = _member_id(platform)
    with platform.container.uow() as uow:
        uow.ledger.post(wallet_top_up_succeeded(top_up_id="test-top-up", member_id=member_id, bank="HBB",
                                                amount=Money.cny(50_000)))
        uow.commit()
    card_before = payout_world.balance("HBB", WANG_FANG_HBB[1])

    page = browser.get("/wallet/withdraw")
    assert "621799*********0022" in page.text
    assert WANG_FANG_HBB[1] not in page.text
    withdraw = form_ending(page, "/wallet/withdraw")
    (card_id,) = withdraw.choices["card_id"]
    withdraw.fields["card_id"] = card_id
    wrong = browser.post(withdraw.action, data={**withdraw.fields, "amount": "100.00", "payment_password": "999999"})
    assert wrong.status_code == 400
    assert "支付密码错误" in wrong.text
    too_much = browser.post(withdraw.action, data={**withdraw.fields, "amount": "600.00",
                                                   "payment_password": PAYMENT_PASSWORD})
    assert too_much.status_code == 400
    assert "余额不足" in too_much.text
    done = browser.post(withdraw.action, data={**withdraw.fields, "amount": "120.00",
                                               "payment_password": PAYMENT_PASSWORD})
    assert done.status_code == 200
    assert "¥380.00" in done.text
    (withdrawal,) = payouts.withdrawals_of(platform.container.uow, member_id)
    assert withdrawal.bank == "HBB"
    assert withdrawal.account_sealed is None
    run_payout_jobs(platform)
    wait_until(lambda: payouts.withdrawals_of(platform.container.uow, member_id)[0].status.value == "succeeded",
               what="the withdrawal succeeded")
    assert payout_world.balance("HBB", WANG_FANG_HBB[1]) == card_before + 12_000
    assert "已到账" in browser.get("/wallet/withdraw").text
    assert "提现" in browser.get("/wallet/history").text


def test_a_withdrawal_at_the_platforms_threshold_waits_for_review_and_a_rejection_puts_it_back_in_the_wallet(
    platform: Platform, browser: httpx.Client
) -> None:
    # Continues the story above: the member has ¥380.00 and a bound HBB card. The platform's default
    # threshold for withdrawals is ¥50,000.00 (Settings.withdrawal_review_threshold_minor).
    assert platform.container.settings.withdrawal_review_threshold_minor == 5_000_000
    member_id = _member_id(platform)
    with platform.container.uow() as uow:
        uow.ledger.post(wallet_top_up_succeeded(top_up_id="test-top-up-large", member_id=member_id, bank="HBB",
                                                amount=Money.cny(5_000_000)))
        uow.commit()
    withdraw = form_ending(browser.get("/wallet/withdraw"), "/wallet/withdraw")
    (card_id,) = withdraw.choices["card_id"]
    done = browser.post(withdraw.action, data={**withdraw.fields, "card_id": card_id, "amount": "50000.00",
                                               "payment_password": PAYMENT_PASSWORD})
    assert done.status_code == 200
    assert "¥380.00" in done.text
    assert "审核中" in done.text
    held = payouts.withdrawals_of(platform.container.uow, member_id)[0]
    assert (held.status.value, held.amount.minor) == ("pending_review", 5_000_000)
    run_payout_jobs(platform)
    assert payouts.withdrawals_of(platform.container.uow, member_id)[0].status.value == "pending_review"

    container = platform.container
    create_operator(container.uow, container.clock, container.member_tools.hasher, "reviewer", "pw-reviewer-123",
                    Role.FINANCE)
    with container.uow() as uow:
        reviewer = uow.operators.get("reviewer")
    assert reviewer is not None
    console.reject_payout(container.uow, console_tools(container), reviewer, held.id, reason="unusual for this member")

    page = browser.get("/wallet/withdraw").text
    assert "审核未通过（已退回钱包）" in page
    assert "¥50,380.00" in page
    with container.uow() as uow:
        assert uow.ledger.balance(f"member:{member_id}:wallet").minor == 5_038_000
        assert uow.ledger.verify() is None


def _member_id(platform: Platform) -> str:
    from tianpay.services.pii import phone_fingerprint

    with platform.container.uow() as uow:
        member = uow.members.by_phone_fingerprint(phone_fingerprint(platform.container.member_tools.cipher,
                                                                     WALLET_PHONE))
    assert member is not None
    return member.id


def test_the_payout_notice_address_refuses_what_does_not_verify_and_banks_without_payouts(platform: Platform) -> None:
    with httpx.Client(base_url=platform.base_url, timeout=10.0) as client:
        forged = client.post("/channels/HBB/payouts/notify", content=b"txnType=12&orderId=pyo1&respCode=00",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (forged.status_code, forged.text) == (500, "fail")
        assert client.post("/channels/JHB/payouts/notify", content=b"{}").status_code == 404


def _payout_status(platform: Platform, merchant_id: str, payout_id: str) -> str:
    """The payout's status after one more query round when it is still at the bank."""
    status = payouts.get_payout(platform.container.uow, merchant_id, payout_id).status.value
    if status in ("processing", "created", "unknown"):
        platform.clock.advance(timedelta(minutes=3))
        run_payout_jobs(platform)
        status = payouts.get_payout(platform.container.uow, merchant_id, payout_id).status.value
    return status


def test_a_bounced_settlement_payout_waits_and_is_paid_again_once_the_account_is_corrected(
    platform: Platform, shop: SignedClient, payout_world: PayoutWorld
) -> None:
    assert "BCB" in platform.container.channels.payout_banks(), "the BCB payout adapter is not registered yet"
    container = platform.container
    merchant_id = shop.credentials.merchant_id
    now = platform.clock.now()
    yesterday = now - timedelta(days=1)
    platform.clock.set(yesterday)
    with container.uow() as uow:
        uow.ledger.post(bank_payment_succeeded(payment_id="pay_bounced_settlement", merchant_id=merchant_id,
                                               bank="BCB", amount=Money.cny(31_000), fee=Money.cny(1_000)))
        uow.commit()
    platform.clock.set(now)
    cipher = container.member_tools.cipher
    settlement.change_settlement_settings(container.uow, platform.clock, cipher, merchant_id, settlement.SettingsChange(
        auto_payout=True, account=settlement.AccountInput("JHB", LI_NA_JHB[1], "王五"),
    ))
    settled = settlement.settle_merchant(container.uow, platform.clock, merchant_id=merchant_id,
                                         business_date=business_date_of(yesterday), required_banks=())
    assert settled.settlement is not None
    settlement_id = settled.settlement.id
    available_before = shop.get("/v1/balance").json()
    jhb_before = payout_world.balance("JHB", LI_NA_JHB[1])

    assert run_payout_jobs(platform)["settlement_payouts"] == 1
    first = settlement.get_settlement(container.uow, merchant_id, settlement_id).payout_id
    assert first is not None
    # BCB answers 0000 (the settlement is paid), then JHB refuses the name and BCB posts its 300001.
    wait_until(lambda: _payout_status(platform, merchant_id, first) == "returned", what="the payout bounced")

    bounced = settlement.get_settlement(container.uow, merchant_id, settlement_id)
    assert (bounced.status.value, bounced.payout_id, bounced.paid_at) == ("payout_failed", first, None)
    assert shop.get("/v1/balance").json() == available_before
    assert run_payout_jobs(platform)["settlement_payouts"] == 0

    settlement.change_settlement_settings(container.uow, platform.clock, cipher, merchant_id, settlement.SettingsChange(
        account=settlement.AccountInput(*LI_NA_JHB),
    ))
    assert run_payout_jobs(platform)["settlement_payouts"] == 1
    second = settlement.get_settlement(container.uow, merchant_id, settlement_id).payout_id
    assert second not in (None, first)
    wait_until(lambda: _payout_status(platform, merchant_id, str(second)) == "succeeded", what="paid again")

    paid = settlement.get_settlement(container.uow, merchant_id, settlement_id)
    assert (paid.status.value, paid.payout_id) == ("paid", second)
    wait_until(lambda: payout_world.balance("JHB", LI_NA_JHB[1]) == jhb_before + 30_000, what="李娜 paid once")
    assert shop.get("/v1/balance").json()["available"]["amount"] == available_before["available"]["amount"] - 30_000
    with container.uow() as uow:
        assert uow.ledger.verify() is None
    settlement.change_settlement_settings(container.uow, platform.clock, cipher, merchant_id,
                                          settlement.SettingsChange(auto_payout=False))
