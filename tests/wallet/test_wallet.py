"""Wallet payments on both databases: paid in one unit of work, refused whole when the balance is
short, refunded back to the wallet, and never overdrawn by concurrent payments."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.members.conftest import PHONE_ZHANG, last_code
from tests.payments.conftest import assert_ledger_sound, events_of
from tests.wallet.conftest import PAYMENT_PASSWORD, WalletWorld, fund, wallet_payment
from tianpay.domain.console import ChannelSetting
from tianpay.domain.errors import IdempotencyConflict, InsufficientBalance
from tianpay.domain.member import PaymentPasswordIncorrect, SmsCodeRequired
from tianpay.domain.money import Money
from tianpay.domain.payment import PaymentStatus
from tianpay.domain.refund import RefundRequest, RefundStatus
from tianpay.domain.wallet import FormKeyInvalid, ThenPayStatus, TopUpBankSwitchedOff, member_form_key
from tianpay.services import payments, refunds, wallet


def pay(world: WalletWorld, payment_id: str, password: str = PAYMENT_PASSWORD, **kwargs: object) -> object:
    return wallet.confirm_wallet_payment(
        world.uow, world.tools, payment_id, member_id=world.member_id, payment_password=password, **kwargs  # type: ignore[arg-type]
    )


def test_a_top_up_credits_the_wallet_without_fee_or_merchant_event(world: WalletWorld) -> None:
    top_up = fund(world, 50_000)
    assert top_up.status is PaymentStatus.SUCCEEDED
    assert top_up.fee_amount.is_zero
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.cny(50_000)
    with world.uow() as uow:
        assert uow.ledger.balance("bank:HBB:reserve") == Money.cny(50_000)
    assert_ledger_sound(world.uow)


def test_a_wallet_payment_debits_the_wallet_and_credits_the_merchant_in_one_go(world: WalletWorld) -> None:
    fund(world, 50_000)
    payment = wallet_payment(world, 10_000)
    paid = wallet.confirm_wallet_payment(
        world.uow, world.tools, payment.id, member_id=world.member_id, payment_password=PAYMENT_PASSWORD
    )
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.fee_amount == Money.cny(30)
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.cny(40_000)
    with world.uow() as uow:
        assert uow.ledger.balance(f"merchant:{world.merchant_id}:pending") == Money.cny(9_970)
    assert [e.type for e in events_of(world.uow, world.merchant_id)] == ["payment.succeeded"]
    history = wallet.wallet_history(world.uow, world.member_id)
    assert [line.amount.minor for line in history] == [-10_000, 50_000]
    assert_ledger_sound(world.uow)


def test_insufficient_balance_changes_nothing(world: WalletWorld) -> None:
    fund(world, 5_000)
    payment = wallet_payment(world, 10_000)
    with pytest.raises(InsufficientBalance):
        pay(world, payment.id)
    detail = payments.get_payment(world.uow, world.merchant_id, payment.id)
    assert detail.payment.status is PaymentStatus.CREATED
    assert detail.attempts == ()
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.cny(5_000)
    assert events_of(world.uow, world.merchant_id) == []
    assert_ledger_sound(world.uow)


def test_a_wrong_payment_password_pays_nothing(world: WalletWorld) -> None:
    fund(world, 50_000)
    payment = wallet_payment(world, 10_000)
    with pytest.raises(PaymentPasswordIncorrect):
        pay(world, payment.id, password="246801")
    assert payments.get_payment(world.uow, world.merchant_id, payment.id).payment.status is PaymentStatus.CREATED


def test_a_large_payment_also_needs_an_sms_code(world: WalletWorld) -> None:
    strict = replace(world, tools=replace(world.tools, wallet_sms_threshold_minor=200_000))
    fund(strict, 300_000)
    payment = wallet_payment(strict, 250_000)
    with pytest.raises(SmsCodeRequired):
        pay(strict, payment.id)
    paid = pay(strict, payment.id, sms_code=last_code(strict.tools, PHONE_ZHANG))
    assert paid.status is PaymentStatus.SUCCEEDED  # type: ignore[attr-defined]


def test_paying_twice_is_a_replay_not_a_second_debit(world: WalletWorld) -> None:
    fund(world, 50_000)
    payment = wallet_payment(world, 10_000)
    pay(world, payment.id)
    pay(world, payment.id)
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.cny(40_000)


def test_a_wallet_payment_is_refunded_to_the_wallet_at_once(world: WalletWorld) -> None:
    fund(world, 50_000)
    payment = wallet_payment(world, 10_000)
    pay(world, payment.id)
    created = refunds.create_refund(
        world.uow, world.tools.clock, world.tools.ids, _no_channels(), world.merchant_id, payment.id,
        RefundRequest(out_refund_no="r-1", amount=Money.cny(4_000)), notify_base_url="http://127.0.0.1",
    )
    assert created.refund.status is RefundStatus.SUCCEEDED
    assert created.refund.fee_returned == Money.cny(12)
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.cny(44_000)
    assert [e.type for e in events_of(world.uow, world.merchant_id)] == ["payment.succeeded", "refund.succeeded"]
    assert_ledger_sound(world.uow)


def test_top_up_and_pay_pays_the_waiting_payment_once_the_top_up_succeeds(world: WalletWorld) -> None:
    fund(world, 3_000)
    payment = wallet_payment(world, 10_000)
    started = wallet.start_top_up(
        world.uow, world.tools, world.member_id, Money.cny(7_000), return_url="https://pay.example/w",
        bank="HBB", then_pay_payment_id=payment.id,
    )
    assert wallet.pay_after_top_up(world.uow, world.tools, started.payment.id) is ThenPayStatus.AWAITING
    attempt = payments.start_attempt(
        world.uow, world.tools.clock, world.tools.ids, started.payment.id, channel="hbb.online_banking", bank="HBB"
    )
    payments.record_attempt_succeeded(
        world.uow, world.tools.clock, started.payment.id, attempt.id, bank_reference="ref-1", amount=Money.cny(7_000)
    )
    assert wallet.pay_after_top_ups(world.uow, world.tools) == 1
    assert payments.get_payment(world.uow, world.merchant_id, payment.id).payment.status is PaymentStatus.SUCCEEDED
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.zero()
    assert wallet.pay_after_top_ups(world.uow, world.tools) == 0
    assert_ledger_sound(world.uow)


def test_concurrent_wallet_payments_never_overdraw_the_wallet(world: WalletWorld, db_url: str) -> None:
    # 1,000 payments on PostgreSQL; SQLite serialises every writer, so a smaller run proves the same.
    total = 1_000 if db_url.startswith("postgresql") else 120
    affordable = 100 if total == 1_000 else 12
    amount_minor = 1_000
    fund(world, affordable * amount_minor)
    orders = [wallet_payment(world, amount_minor) for _ in range(total)]

    def attempt(payment_id: str) -> str:
        try:
            pay(world, payment_id)
        except InsufficientBalance as refused:
            return refused.code
        return "succeeded"

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(attempt, [p.id for p in orders]))
    assert outcomes.count("succeeded") == affordable
    assert outcomes.count("insufficient_balance") == total - affordable
    assert wallet.wallet_balance(world.uow, world.member_id) == Money.zero()
    assert_ledger_sound(world.uow)


def _no_channels() -> object:
    class NoChannels:
        def refunds(self, bank: str) -> object:
            raise AssertionError(f"a wallet refund called bank {bank}")

    return NoChannels()


# ---- one-time form keys and switched-off banks (docs/wallet.md "Double submits") --------------------------


def _start(world: WalletWorld, amount_minor: int, form_key: str | None, bank: str = "HBB") -> wallet.TopUpStarted:
    return wallet.start_top_up(world.uow, world.tools, world.member_id, Money.cny(amount_minor),
                               return_url="https://pay.example/wallet", bank=bank, form_key=form_key)


def test_a_repeated_top_up_form_key_returns_the_first_top_up(world: WalletWorld) -> None:
    first = _start(world, 10_000, "key-one")
    again = _start(world, 10_000, "key-one")
    other = _start(world, 10_000, "key-two")
    assert not first.replayed
    assert again.replayed
    assert again.payment.id == first.payment.id
    assert other.payment.id != first.payment.id
    with pytest.raises(IdempotencyConflict):
        _start(world, 20_000, "key-one")


@pytest.mark.parametrize("form_key", ["", "x" * 41, "has space", "ключ"])
def test_a_missing_or_odd_form_key_is_refused_before_anything_is_stored(world: WalletWorld, form_key: str) -> None:
    with pytest.raises(FormKeyInvalid):
        _start(world, 10_000, form_key)
    with pytest.raises(FormKeyInvalid):
        member_form_key(world.member_id, form_key)


def test_a_bank_switched_off_in_the_console_takes_no_top_up(world: WalletWorld) -> None:
    with world.uow() as uow:
        uow.channel_settings.save(ChannelSetting("HBB", False, None, "ops.admin", world.tools.clock.now()))
        uow.commit()
    assert wallet.top_up_banks(world.uow, ["HBB", "JHB"]) == ["JHB"]
    with pytest.raises(TopUpBankSwitchedOff):
        _start(world, 10_000, "key-off")
    assert _start(world, 10_000, "key-off", bank="JHB").payment.bank == "JHB"
