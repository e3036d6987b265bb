"""Card binding through the service against the real banks: bound, each refusal, expiry, scope, unbinding.

Each test runs on SQLite and PostgreSQL. Card numbers and the holder's elements are sealed at rest:
the raw rows are searched for them and must not contain them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from tianpay.adapters.clock import SettableClock
from tianpay.domain.card_binding import (
    BindingStatus,
    CardAlreadyBound,
    CardBankUnsupported,
    CardNumberInvalid,
)
from tianpay.domain.errors import NotFound
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import card_bindings, members
from tianpay.services.card_bindings import BindingDeclined
from tianpay.services.member_tools import MemberTools

from .conftest import (
    LIU_YANG,
    OTHER_MERCHANT,
    PAYMENT_PASSWORD,
    ZHANG_WEI,
    Binder,
    application,
    bank_sms_code,
    register,
)

pytestmark = pytest.mark.e2e


def test_zhang_weis_hbb_card_is_bound_and_then_a_payment_password_is_due(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools, engine: Engine
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    applied = binder.apply(application(member_id, ZHANG_WEI, "HBB"))
    assert (applied.status, applied.bank, applied.card_masked) == (
        BindingStatus.APPLIED, "HBB", "621799*********0014"
    )
    confirmed = binder.confirm(applied, bank_sms_code(binder.world, "HBB", ZHANG_WEI.phone))
    assert confirmed.binding.status is BindingStatus.BOUND
    assert confirmed.needs_payment_password
    members.set_payment_password(uow_factory, tools, member_id, PAYMENT_PASSWORD)
    assert not members.member_needs_payment_password(uow_factory, member_id)
    with engine.connect() as connection:
        row = " ".join(str(v) for v in connection.execute(text("SELECT * FROM card_bindings")).one())
    for secret in (ZHANG_WEI.cards["HBB"], ZHANG_WEI.id_number, ZHANG_WEI.phone):
        assert secret not in row
    with uow_factory() as uow:
        steps = [(t.from_status, t.to_status) for t in uow.card_bindings.transitions_of(applied.id)]
    assert steps == [(None, "applied"), ("applied", "bound")]


def test_the_bank_is_derived_from_the_bin_and_a_jhb_card_binds_at_jhb(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    assert binder.bind(member_id, ZHANG_WEI, "JHB").bank == "JHB"


def test_a_phone_that_is_not_the_reserved_one_fails_the_binding(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    with pytest.raises(BindingDeclined) as declined:
        binder.apply(application(member_id, ZHANG_WEI, "HBB", phone="13900139000"))
    assert declined.value.code == "card_elements_mismatch"
    with uow_factory() as uow:
        (binding,) = uow.card_bindings.of_member(member_id)
    assert (binding.status, binding.failure_code, binding.holder_sealed) == (
        BindingStatus.FAILED, "card_elements_mismatch", None
    )


def test_a_wrong_name_is_caught_by_hbb_at_the_bind_step(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    # HBB's 77 reads only the phone; the 79 compares all four elements (docs/banks/hbb.md).
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    applied = binder.apply(application(member_id, ZHANG_WEI, "HBB", name="王芳"))
    with pytest.raises(BindingDeclined) as declined:
        binder.confirm(applied, bank_sms_code(binder.world, "HBB", ZHANG_WEI.phone))
    assert declined.value.code == "card_elements_mismatch"
    assert card_bindings.get_binding(uow_factory, applied.id, merchant_id=None).status is BindingStatus.FAILED


def test_a_frozen_card_is_refused_as_card_frozen(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, LIU_YANG)
    with pytest.raises(BindingDeclined) as declined:
        binder.apply(application(member_id, LIU_YANG, "HBB"))
    assert declined.value.code == "card_frozen"


def test_a_card_hbb_does_not_know_is_card_invalid_and_a_bcb_card_is_unsupported(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    with pytest.raises(BindingDeclined) as declined:
        binder.apply(application(member_id, ZHANG_WEI, "HBB", card_number="6217990000000000121"))
    assert declined.value.code == "card_invalid"
    with pytest.raises(CardBankUnsupported):
        binder.apply(application(member_id, ZHANG_WEI, "HBB", card_number="6230990000000000017"))
    with pytest.raises(CardNumberInvalid):
        binder.apply(application(member_id, ZHANG_WEI, "HBB", card_number="6217990000000000015"))


def test_a_wrong_code_leaves_tries_and_the_fifth_exhausts_them(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    applied = binder.apply(application(member_id, ZHANG_WEI, "HBB"))
    right = bank_sms_code(binder.world, "HBB", ZHANG_WEI.phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    codes = []
    for _ in range(5):
        with pytest.raises(BindingDeclined) as declined:
            binder.confirm(applied, wrong)
        codes.append(declined.value.code)
    assert codes == ["sms_code_invalid"] * 4 + ["sms_code_attempts_exceeded"]
    with uow_factory() as uow:
        binding = uow.card_bindings.get(applied.id)
    assert binding is not None
    assert binding.status is BindingStatus.FAILED
    assert right not in (binding.failure_code or "")


def test_a_code_typed_after_five_minutes_has_expired(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools, clock: SettableClock
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    applied = binder.apply(application(member_id, ZHANG_WEI, "HBB"))
    code = bank_sms_code(binder.world, "HBB", ZHANG_WEI.phone)
    clock.advance(timedelta(minutes=5, seconds=1))
    with pytest.raises(BindingDeclined) as declined:
        binder.confirm(applied, code)
    assert declined.value.code == "sms_code_expired"
    assert card_bindings.get_binding(uow_factory, applied.id, merchant_id=None).status is BindingStatus.EXPIRED


def test_a_bound_card_cannot_be_bound_twice_until_it_is_unbound(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    bound = binder.bind(member_id, ZHANG_WEI, "JHB")
    with pytest.raises(CardAlreadyBound):
        binder.apply(application(member_id, ZHANG_WEI, "JHB"))
    unbound = card_bindings.unbind(uow_factory, binder.clock, binder.channels, binder.tools.cipher, bound.id,
                                   merchant_id=binder.merchant_id, member_id=member_id)
    assert (unbound.status, unbound.bank_token_sealed) == (BindingStatus.UNBOUND, None)
    assert card_bindings.cards_of(uow_factory, member_id, merchant_id=binder.merchant_id) == []
    assert binder.bind(member_id, ZHANG_WEI, "JHB").status is BindingStatus.BOUND


def test_another_merchant_cannot_see_or_touch_the_card(
    binder: Binder, uow_factory: UnitOfWorkFactory, tools: MemberTools
) -> None:
    member_id = register(uow_factory, tools, binder.merchant_id, ZHANG_WEI)
    applied = binder.apply(application(member_id, ZHANG_WEI, "HBB"))
    with pytest.raises(NotFound):
        card_bindings.confirm_binding(uow_factory, binder.clock, binder.channels, tools.cipher, applied.id, "123456",
                                      merchant_id=OTHER_MERCHANT)
    with pytest.raises(NotFound):
        card_bindings.apply_binding(uow_factory, binder.clock, binder.ids, binder.channels, tools.cipher,
                                    application(member_id, ZHANG_WEI, "JHB"), merchant_id=OTHER_MERCHANT)
