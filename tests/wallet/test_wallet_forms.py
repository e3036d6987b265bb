"""The wallet's forms over plain HTTP against a real platform server and the simulated banks, on both
databases: one guard for every signed-in page (sign-in redirect, 403 without a session or a CSRF token),
one-time form keys that make a second POST of the same withdrawal or top-up form change nothing, and
banks an operator switched off in the console: no top-up there (by online banking or with a bound card),
no quick pay at the cashier with a card there, no withdrawal to a card there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.bindings.conftest import ZHANG_WEI, bank_sms_code
from tests.conftest import BACKENDS, _DatabaseFactory
from tests.gateway.conftest import (
    BankWorld,
    Form,
    add_merchant,
    bank_world,
    form_ending,
    forms_on,
    new_payment,
    onboarded_dir,
    wait_until,
)
from tests.payments.conftest import assert_ledger_sound
from tests.wallet.conftest import WalletWorld, fund
from tests.wallet.test_wallet_pages import Platform, live_wallet_platform
from tianpay.adapters.db.tables import payouts as payouts_table
from tianpay.adapters.db.tables import wallet_top_ups
from tianpay.domain.money import Money
from tianpay.domain.operator import Operator, Role
from tianpay.entrypoints.console.routes import console_tools
from tianpay.services import console, members, wallet

pytestmark = pytest.mark.e2e
__all__ = ["bank_world", "onboarded_dir"]
MERCHANT = "mch_WFORMS"
PAYMENT_PASSWORD = "135790"
HBB_CARD = ZHANG_WEI.cards["HBB"]


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, database_factory: _DatabaseFactory, onboarded_dir: Path
             ) -> Iterator[Platform]:
    database_url = database_factory.sqlite() if request.param == "sqlite" else database_factory.postgresql()
    with live_wallet_platform(database_url, onboarded_dir) as platform:
        yield platform


@pytest.fixture(scope="module")
def payer(platform: Platform) -> str:
    """张伟, registered by a merchant (so his real name is known) with a payment password."""
    add_merchant(platform.container.uow, platform.clock, MERCHANT)
    registration = members.ImplicitRegistration(MERCHANT, "payer-wf", ZHANG_WEI.name, ZHANG_WEI.id_number,
                                                ZHANG_WEI.phone)
    tools = platform.container.member_tools
    member_id = members.register_for_merchant(platform.container.uow, tools, registration).member.id
    members.set_payment_password(platform.container.uow, tools, member_id, PAYMENT_PASSWORD)
    return member_id


@pytest.fixture(scope="module")
def browser(platform: Platform, payer: str) -> Iterator[httpx.Client]:
    """The payer's browser, signed in (the sign-in pages themselves are test_wallet_pages' story)."""
    token = members.start_session(platform.container.uow, platform.container.member_tools, payer)
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=True) as client:
        client.cookies.set("tp_wallet_session", token)
        yield client


@pytest.fixture(scope="module")
def card_id(platform: Platform, bank_world: BankWorld, browser: httpx.Client, payer: str) -> str:
    """The payer's HBB card, bound through the wallet's card pages and HBB's SMS code."""
    apply = form_ending(browser.get("/wallet/cards"), "/wallet/cards")
    code_page = browser.post(apply.action, data={**apply.fields, "card_number": HBB_CARD, "phone": ZHANG_WEI.phone})
    confirm = form_ending(code_page, "/confirm")
    browser.post(confirm.action, data={**confirm.fields, "sms_code": bank_sms_code(bank_world, "HBB", ZHANG_WEI.phone)})
    withdraw = form_ending(browser.get("/wallet/withdraw"), "/wallet/withdraw")
    (bound,) = withdraw.choices["card_id"]
    return bound


def balance_minor(platform: Platform, member_id: str) -> int:
    return wallet.wallet_balance(platform.container.uow, member_id).minor


def withdrawal_count(platform: Platform, member_id: str) -> int:
    with platform.container.uow() as uow:
        counted = uow._connection.execute(  # type: ignore[attr-defined]
            select(func.count()).select_from(payouts_table).where(payouts_table.c.member_id == member_id)
        ).scalar_one()
    return int(counted)


def top_up_count(platform: Platform, member_id: str) -> int:
    with platform.container.uow() as uow:
        counted = uow._connection.execute(  # type: ignore[attr-defined]
            select(func.count()).select_from(wallet_top_ups).where(wallet_top_ups.c.member_id == member_id)
        ).scalar_one()
    return int(counted)


def withdraw_form(browser: httpx.Client, card_id: str, amount: str) -> Form:
    form = form_ending(browser.get("/wallet/withdraw"), "/wallet/withdraw")
    form.fields.update(card_id=card_id, amount=amount, payment_password=PAYMENT_PASSWORD)
    return form


# ---- one guard -------------------------------------------------------------------------------------------


def test_signed_out_pages_go_to_sign_in_and_signed_out_posts_are_refused(platform: Platform, payer: str) -> None:
    with httpx.Client(base_url=platform.base_url, timeout=15.0, follow_redirects=False) as stranger:
        for path in ("/wallet", "/wallet/withdraw", "/wallet/top-up", "/wallet/cards", "/wallet/mandates"):
            page = stranger.get(path)
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/wallet/login?next="), path
            assert stranger.get(page.headers["location"]).status_code == 200
        # A valid CSRF token is not a session: the POST is refused, never redirected and lost.
        login = stranger.get("/wallet/login")
        form = form_ending(login, "/wallet/login")
        refused = stranger.post("/wallet/withdraw", data={**form.fields, "amount": "1", "card_id": "cbd_x"})
        assert refused.status_code == 403
        assert refused.headers["x-frame-options"] == "DENY"
    assert withdrawal_count(platform, payer) == 0


def test_signed_in_posts_without_a_csrf_token_are_refused(
    platform: Platform, browser: httpx.Client, payer: str, card_id: str
) -> None:
    fund(WalletWorld(platform.container.uow, platform.container.member_tools, MERCHANT, payer), 1_000)
    before = balance_minor(platform, payer)
    form = withdraw_form(browser, card_id, "1.00")
    del form.fields["csrf_token"]
    assert browser.post(form.action, data=form.fields).status_code == 403
    assert browser.post("/wallet/payment-password/code", data={}).status_code == 403
    assert balance_minor(platform, payer) == before
    assert withdrawal_count(platform, payer) == 0


# ---- double submits --------------------------------------------------------------------------------------


def test_posting_the_same_withdrawal_form_twice_withdraws_once(
    platform: Platform, browser: httpx.Client, payer: str, card_id: str
) -> None:
    fund(WalletWorld(platform.container.uow, platform.container.member_tools, MERCHANT, payer), 50_000)
    before = balance_minor(platform, payer)
    count_before = withdrawal_count(platform, payer)
    form = withdraw_form(browser, card_id, "120.00")
    first = browser.post(form.action, data=form.fields)
    second = browser.post(form.action, data=form.fields)
    assert first.url.path == second.url.path == "/wallet/withdraw"
    assert first.status_code == second.status_code == 200
    assert withdrawal_count(platform, payer) == count_before + 1
    assert balance_minor(platform, payer) == before - 12_000
    # The same form sent at the same moment from two connections: still one withdrawal.
    racing = withdraw_form(browser, card_id, "30.00")
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: browser.post(racing.action, data=racing.fields), range(2)))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert withdrawal_count(platform, payer) == count_before + 2
    assert balance_minor(platform, payer) == before - 15_000
    assert_ledger_sound(platform.container.uow)


def test_a_reused_withdrawal_form_with_another_amount_or_without_its_key_changes_nothing(
    platform: Platform, browser: httpx.Client, payer: str, card_id: str
) -> None:
    fund(WalletWorld(platform.container.uow, platform.container.member_tools, MERCHANT, payer), 10_000)
    form = withdraw_form(browser, card_id, "10.00")
    assert browser.post(form.action, data=form.fields).status_code == 200
    before, count_before = balance_minor(platform, payer), withdrawal_count(platform, payer)
    changed = browser.post(form.action, data={**form.fields, "amount": "20.00"})
    assert changed.status_code == 409
    assert 'data-error="idempotency_conflict"' in changed.text
    keyless = withdraw_form(browser, card_id, "10.00")
    del keyless.fields["form_key"]
    refused = browser.post(keyless.action, data=keyless.fields)
    assert refused.status_code == 400
    assert 'data-error="form_key_invalid"' in refused.text
    assert (balance_minor(platform, payer), withdrawal_count(platform, payer)) == (before, count_before)


def test_posting_the_same_quick_pay_top_up_form_twice_charges_the_card_once(
    platform: Platform, bank_world: BankWorld, browser: httpx.Client, payer: str, card_id: str
) -> None:
    before, card_before = balance_minor(platform, payer), bank_world.balance("HBB", HBB_CARD)
    top_ups_before = top_up_count(platform, payer)
    form = form_ending(browser.get("/wallet/top-up"), "/wallet/top-up/quick-pay")
    form.fields.update(card_id=card_id, amount="66.00", payment_password=PAYMENT_PASSWORD)
    first = browser.post(form.action, data=form.fields)
    second = browser.post(form.action, data=form.fields)
    assert first.url.path == second.url.path == "/wallet"
    wait_until(lambda: balance_minor(platform, payer) == before + 6_600, what="the top-up credited")
    assert top_up_count(platform, payer) == top_ups_before + 1
    assert bank_world.balance("HBB", HBB_CARD) == card_before - 6_600
    assert_ledger_sound(platform.container.uow)


def test_posting_the_same_bank_top_up_form_twice_makes_one_top_up(
    platform: Platform, browser: httpx.Client, payer: str
) -> None:
    top_ups_before = top_up_count(platform, payer)
    form = form_ending(browser.get("/wallet/top-up"), "/wallet/top-up")
    form.fields.update(amount="88.00", bank="HBB")
    first = browser.post(form.action, data=form.fields)
    second = browser.post(form.action, data=form.fields)
    # Both answers take the payer to the bank (the browser shows the last one) for the same top-up.
    assert 'id="bank-form"' in first.text
    assert 'id="bank-form"' in second.text
    assert top_up_count(platform, payer) == top_ups_before + 1


# ---- banks switched off in the console ---------------------------------------------------------------------


def test_a_bank_switched_off_in_the_console_is_not_offered_and_a_forged_top_up_is_refused(
    platform: Platform, browser: httpx.Client, payer: str
) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    offered = form_ending(browser.get("/wallet/top-up"), "/wallet/top-up").choices["bank"]
    assert "HBB" in offered
    console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get("/wallet/top-up")
        form = form_ending(page, "/wallet/top-up")
        assert "HBB" not in form.choices["bank"]
        assert form.choices["bank"] == [bank for bank in offered if bank != "HBB"]
        top_ups_before = top_up_count(platform, payer)
        forged = browser.post(form.action, data={**form.fields, "amount": "10.00", "bank": "HBB"})
        assert forged.status_code == 400
        assert 'data-error="bank_switched_off"' in forged.text
        assert "该银行暂停充值，请选择其他银行" in forged.text
        assert top_up_count(platform, payer) == top_ups_before
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")
    assert "HBB" in form_ending(browser.get("/wallet/top-up"), "/wallet/top-up").choices["bank"]


def test_a_card_at_a_switched_off_bank_is_greyed_out_and_a_forged_quick_top_up_with_it_is_refused(
    platform: Platform, bank_world: BankWorld, browser: httpx.Client, payer: str, card_id: str
) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    assert card_offered(browser.get("/wallet/top-up"), card_id) == "available"
    console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get("/wallet/top-up")
        assert card_offered(page, card_id) == "bank_switched_off"
        assert "该银行暂停充值" in page.text
        assert 'data-field="no-cards-available"' in page.text
        form = form_ending(page, "/wallet/top-up/quick-pay")
        before = (balance_minor(platform, payer), top_up_count(platform, payer), bank_world.balance("HBB", HBB_CARD))
        forged = browser.post(form.action, data={**form.fields, "card_id": card_id, "amount": "12.00",
                                                 "payment_password": PAYMENT_PASSWORD})
        assert forged.status_code == 400
        assert 'data-error="bank_switched_off"' in forged.text
        assert "该银行暂停充值，请选择其他银行" in forged.text
        assert card_offered(forged, card_id) == "bank_switched_off"
        after = (balance_minor(platform, payer), top_up_count(platform, payer), bank_world.balance("HBB", HBB_CARD))
        assert after == before
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")
    assert card_offered(browser.get("/wallet/top-up"), card_id) == "available"


def card_offered(page: httpx.Response, card_id: str, action: str = "/wallet/top-up/quick-pay") -> str:
    """How the form posting to ``action`` (the quick top-up, the withdrawal, the cashier's quick pay) lists
    the card: "available", or the reason code it is greyed out with."""
    form = next(f for f in forms_on(page) if f.action.endswith(action))
    assert card_id in form.choices["card_id"]
    greyed = re.search(
        rf'<label class="bank hint" data-unavailable="([a-z_]+)">\s*<input type="radio" name="card_id" '
        rf'value="{re.escape(card_id)}" disabled>', page.text,
    )
    return "available" if greyed is None else greyed.group(1)


def test_top_up_and_pay_offers_only_banks_that_are_on(platform: Platform, browser: httpx.Client, payer: str) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    payment = _cashier_payment(platform, wallet.wallet_balance(container.uow, payer) + Money.cny(10_000))
    console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get(f"/wallet/pay/{payment}")
        form = form_ending(page, f"/wallet/pay/{payment}/top-up")
        assert "HBB" not in form.choices["bank"]
        forged = browser.post(form.action, data={**form.fields, "bank": "HBB", "amount_choice": "shortfall",
                                                 "payment_password": PAYMENT_PASSWORD})
        assert forged.status_code == 400
        assert 'data-error="bank_switched_off"' in forged.text
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")


def test_the_cashiers_quick_pay_greys_out_a_card_at_a_switched_off_bank_and_refuses_a_forged_payment_with_it(
    platform: Platform, bank_world: BankWorld, browser: httpx.Client, payer: str, card_id: str
) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    payment = _cashier_payment(platform, Money.cny(1_234))
    action = f"/cashier/{payment}/quick-pay"
    assert card_offered(browser.get(action), card_id, action) == "available"
    console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get(action)
        assert page.status_code == 200
        assert card_offered(page, card_id, action) == "bank_switched_off"
        assert "该银行暂停快捷支付" in page.text
        assert 'data-field="no-cards-available"' in page.text
        form = form_ending(page, action)
        card_before = bank_world.balance("HBB", HBB_CARD)
        forged = browser.post(form.action, data={**form.fields, "card_id": card_id,
                                                 "payment_password": PAYMENT_PASSWORD})
        assert forged.status_code == 400
        assert 'data-error="bank_switched_off"' in forged.text
        assert "该银行卡所属银行暂停快捷支付" in forged.text
        assert card_offered(forged, card_id, action) == "bank_switched_off"
        # Nothing was stored or sent: the payment is still payable, with no attempt, and the card untouched.
        assert _payment_state(platform, payment) == ("created", [])
        assert bank_world.balance("HBB", HBB_CARD) == card_before
        english = browser.get(f"{action}?lang=en")
        assert "Bank not taking quick pay right now" in english.text
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")
        browser.get(f"/cashier/{payment}?lang=zh")
    page = browser.get(action)
    assert card_offered(page, card_id, action) == "available"
    card_before = bank_world.balance("HBB", HBB_CARD)
    paid = browser.post(action, data={**form_ending(page, action).fields, "card_id": card_id,
                                      "payment_password": PAYMENT_PASSWORD})
    assert paid.url.path == f"/cashier/{payment}/result"
    assert _payment_state(platform, payment)[0] == "succeeded"
    assert bank_world.balance("HBB", HBB_CARD) == card_before - 1_234


def _payment_state(platform: Platform, payment_id: str) -> tuple[str, list[str]]:
    with platform.container.uow() as uow:
        found = uow.payments.get(payment_id)
        assert found is not None
        return found.status.value, [attempt.bank for attempt in uow.payments.attempts_of(payment_id)]


def test_a_withdrawal_to_a_card_at_a_switched_off_bank_is_greyed_out_and_a_forged_one_changes_nothing(
    platform: Platform, browser: httpx.Client, payer: str, card_id: str
) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    fund(WalletWorld(container.uow, container.member_tools, MERCHANT, payer), 5_000)
    assert card_offered(browser.get("/wallet/withdraw"), card_id, "/wallet/withdraw") == "available"
    console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get("/wallet/withdraw")
        assert card_offered(page, card_id, "/wallet/withdraw") == "bank_switched_off"
        assert "该银行暂停提现" in page.text
        assert 'data-field="no-cards-available"' in page.text
        before = (balance_minor(platform, payer), withdrawal_count(platform, payer))
        forged = browser.post("/wallet/withdraw", data=withdraw_form(browser, card_id, "10.00").fields)
        assert forged.status_code == 400
        assert 'data-error="bank_switched_off"' in forged.text
        assert "该银行暂停提现，请选择其他银行卡" in forged.text
        # No withdrawal, no hold on the wallet, no ledger entry.
        assert (balance_minor(platform, payer), withdrawal_count(platform, payer)) == before
        assert_ledger_sound(container.uow)
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "HBB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")


def test_a_bank_switched_off_stops_only_the_withdrawals_that_would_go_to_it_or_through_it(
    platform: Platform, browser: httpx.Client, payer: str, card_id: str
) -> None:
    container = platform.container
    admin = Operator("ops.admin", Role.ADMIN, False, platform.clock.now())
    fund(WalletWorld(container.uow, container.member_tools, MERCHANT, payer), 5_000)
    # BCB pays only the cards at banks without a payout channel (JHB); HBB cards are paid from HBB's reserve.
    console.set_channel(container.uow, console_tools(container), admin, "BCB", is_enabled=False, cost_bps=None,
                        reason="maintenance window")
    try:
        page = browser.get("/wallet/withdraw")
        assert card_offered(page, card_id, "/wallet/withdraw") == "available"
        before = (balance_minor(platform, payer), withdrawal_count(platform, payer))
        done = browser.post("/wallet/withdraw", data=withdraw_form(browser, card_id, "1.00").fields)
        assert done.status_code == 200
        assert (balance_minor(platform, payer), withdrawal_count(platform, payer)) == (before[0] - 100, before[1] + 1)
    finally:
        console.set_channel(container.uow, console_tools(container), admin, "BCB", is_enabled=True, cost_bps=None,
                            reason="maintenance over")


def _cashier_payment(platform: Platform, amount: Money) -> str:
    return new_payment(platform.container.uow, platform.clock, platform.container.ids, MERCHANT, amount.minor).id
