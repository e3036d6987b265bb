"""Members on both databases: one person one member across merchants, PII sealed at rest, SMS codes'
limits and tries, wallet sign-up and sign-in, and the payment password's 3-hour lock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from tests.members.conftest import ID_LI, ID_ZHANG, PHONE_LI, PHONE_ZHANG, last_code
from tianpay.adapters.clock import SettableClock
from tianpay.adapters.db import tables
from tianpay.domain.errors import IdempotencyConflict, NotFound
from tianpay.domain.member import (
    InvalidIdNumber,
    InvalidName,
    InvalidPhone,
    LoginFailed,
    PaymentPasswordAlreadySet,
    PaymentPasswordIncorrect,
    PaymentPasswordLocked,
    PhoneInUse,
    SmsCodeExpired,
    SmsCodeIncorrect,
    SmsCodeTooManyTries,
    SmsRateLimited,
)
from tianpay.domain.merchant import Merchant, MerchantStatus
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import members
from tianpay.services.member_tools import MemberTools
from tianpay.services.members import ImplicitRegistration


@pytest.fixture
def shops(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> tuple[str, str]:
    with uow_factory() as uow:
        for merchant_id in ("mch_A", "mch_B"):
            uow.merchants.add(Merchant(merchant_id, merchant_id, MerchantStatus.ACTIVE, None, "whsec", clock.now()))
        uow.commit()
    return "mch_A", "mch_B"


def register(uow_factory: UnitOfWorkFactory, tools: MemberTools, merchant_id: str, external_id: str, *,
             name: str = "张伟", id_number: str = ID_ZHANG, phone: str = PHONE_ZHANG) -> members.RegisteredMember:
    request = ImplicitRegistration(merchant_id, external_id, name, id_number, phone)
    return members.register_for_merchant(uow_factory, tools, request)


def test_one_person_registered_by_two_merchants_is_one_member_each_sees_through_its_own_id(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    shop_a, shop_b = shops
    at_a = register(uow_factory, member_tools, shop_a, "user-1")
    at_b = register(uow_factory, member_tools, shop_b, "u9", id_number=ID_ZHANG.lower(), phone="+86 138 0013 8001")
    assert at_a.member.id == at_b.member.id
    assert members.external_ids_of(uow_factory, shop_a, at_a.member.id) == ["user-1"]
    assert members.external_ids_of(uow_factory, shop_b, at_a.member.id) == ["u9"]


def test_a_member_is_invisible_to_a_merchant_that_did_not_register_it(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    shop_a, shop_b = shops
    member = register(uow_factory, member_tools, shop_a, "user-1").member
    with pytest.raises(NotFound):
        members.member_for_merchant(uow_factory, shop_b, member.id)


def test_registration_is_idempotent_by_external_id(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    first = register(uow_factory, member_tools, shops[0], "user-1")
    again = register(uow_factory, member_tools, shops[0], "user-1")
    assert again.replayed
    assert again.member.id == first.member.id
    with pytest.raises(IdempotencyConflict):
        register(uow_factory, member_tools, shops[0], "user-1", name="李娜", id_number=ID_LI, phone=PHONE_LI)


def test_the_member_view_is_masked(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    member = register(uow_factory, member_tools, shops[0], "user-1").member
    view = members.member_view(member, ["user-1"])
    assert view["id_number"] == "1****************X"
    assert view["phone"] == "138****8001"
    assert ID_ZHANG not in str(view)
    assert PHONE_ZHANG not in str(view)


def test_id_numbers_and_phones_are_encrypted_at_rest(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str], engine: Engine
) -> None:
    member_id = register(uow_factory, member_tools, shops[0], "user-1").member.id
    members.send_payment_password_code(uow_factory, member_tools, member_id)
    with engine.connect() as connection:
        raw = " ".join(
            str(value)
            for table in (tables.members, tables.merchant_members, tables.sms_codes, tables.sms_outbox)
            for row in connection.execute(select(table))
            for value in row
        )
    assert ID_ZHANG not in raw
    assert ID_ZHANG[:17] not in raw
    assert PHONE_ZHANG not in raw
    assert last_code(member_tools, PHONE_ZHANG) not in raw
    assert "1****************X" in raw
    assert "138****8001" in raw


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("id_number", "110105194912310021", InvalidIdNumber),
        ("id_number", "999999194912310022", InvalidIdNumber),
        ("phone", "12345678901", InvalidPhone),
        ("phone", "02112345678", InvalidPhone),
        ("name", "X", InvalidName),
    ],
)
def test_invalid_registrations_are_refused_without_echoing_the_value(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str],
    field: str, value: str, error: type[Exception],
) -> None:
    with pytest.raises(error) as refused:
        register(uow_factory, member_tools, shops[0], "user-1", **{field: value})
    assert value not in str(refused.value)


def test_a_phone_belongs_to_one_person(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    register(uow_factory, member_tools, shops[0], "user-1")
    with pytest.raises(PhoneInUse):
        register(uow_factory, member_tools, shops[0], "user-2", name="李娜", id_number=ID_LI)


def test_the_same_id_number_under_another_name_is_refused(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    register(uow_factory, member_tools, shops[0], "user-1")
    with pytest.raises(InvalidName):
        register(uow_factory, member_tools, shops[1], "user-1", name="李娜")


# ---- SMS codes ---------------------------------------------------------------------------------------


def test_one_code_a_minute_and_ten_a_day_per_phone(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, clock: SettableClock
) -> None:
    members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    with pytest.raises(SmsRateLimited):
        members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    members.send_registration_code(uow_factory, member_tools, PHONE_ZHANG)
    for _ in range(9):
        clock.advance(timedelta(minutes=1))
        members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    clock.advance(timedelta(minutes=1))
    with pytest.raises(SmsRateLimited):
        members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    clock.advance(timedelta(days=1))
    members.send_registration_code(uow_factory, member_tools, PHONE_LI)


def test_a_code_expires_after_five_minutes(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, clock: SettableClock
) -> None:
    members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    code = last_code(member_tools, PHONE_LI)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(SmsCodeExpired):
        members.register_in_wallet(uow_factory, member_tools, PHONE_LI, code, "abc12345")


def test_a_code_dies_after_five_wrong_tries_and_is_used_once(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools
) -> None:
    members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    code = last_code(member_tools, PHONE_LI)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        with pytest.raises(SmsCodeIncorrect):
            members.register_in_wallet(uow_factory, member_tools, PHONE_LI, wrong, "abc12345")
    with pytest.raises(SmsCodeTooManyTries):
        members.register_in_wallet(uow_factory, member_tools, PHONE_LI, wrong, "abc12345")
    with pytest.raises(SmsCodeTooManyTries):
        members.register_in_wallet(uow_factory, member_tools, PHONE_LI, code, "abc12345")


def test_a_right_code_signs_up_once(uow_factory: UnitOfWorkFactory, member_tools: MemberTools) -> None:
    members.send_registration_code(uow_factory, member_tools, PHONE_LI)
    code = last_code(member_tools, PHONE_LI)
    member = members.register_in_wallet(uow_factory, member_tools, PHONE_LI, code, "abc12345")
    assert members.log_in(uow_factory, member_tools, PHONE_LI, "abc12345").id == member.id
    with pytest.raises(SmsCodeExpired):
        members.register_in_wallet(uow_factory, member_tools, PHONE_LI, code, "abc12345")
    with pytest.raises(LoginFailed):
        members.log_in(uow_factory, member_tools, PHONE_LI, "wrong1234")
    with pytest.raises(LoginFailed):
        members.log_in(uow_factory, member_tools, PHONE_ZHANG, "abc12345")


def test_signing_up_with_the_phone_a_merchant_registered_claims_that_member(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]
) -> None:
    implicit = register(uow_factory, member_tools, shops[0], "user-1").member
    members.send_registration_code(uow_factory, member_tools, PHONE_ZHANG)
    claimed = members.register_in_wallet(
        uow_factory, member_tools, PHONE_ZHANG, last_code(member_tools, PHONE_ZHANG), "abc12345"
    )
    assert claimed.id == implicit.id
    assert claimed.is_real_name_verified


def test_sessions_are_server_side_and_end_at_logout(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str], clock: SettableClock
) -> None:
    member = register(uow_factory, member_tools, shops[0], "user-1").member
    token = members.start_session(uow_factory, member_tools, member.id)
    signed_in = members.member_of_session(uow_factory, member_tools, token)
    assert signed_in is not None
    assert signed_in.id == member.id
    members.end_session(uow_factory, member_tools, token)
    assert members.member_of_session(uow_factory, member_tools, token) is None
    expiring = members.start_session(uow_factory, member_tools, member.id)
    clock.advance(member_tools.session_lifetime)
    assert members.member_of_session(uow_factory, member_tools, expiring) is None


# ---- the payment password ---------------------------------------------------------------------------


@pytest.fixture
def member_id(uow_factory: UnitOfWorkFactory, member_tools: MemberTools, shops: tuple[str, str]) -> str:
    member_id = register(uow_factory, member_tools, shops[0], "user-1").member.id
    assert members.member_needs_payment_password(uow_factory, member_id)
    members.set_payment_password(uow_factory, member_tools, member_id, "135790")
    assert not members.member_needs_payment_password(uow_factory, member_id)
    return member_id


def test_five_wrong_payment_passwords_lock_the_member_for_3_hours(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, clock: SettableClock, member_id: str
) -> None:
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(PaymentPasswordIncorrect) as wrong:
            members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(PaymentPasswordLocked) as locked:
        members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
    assert locked.value.locked_until == clock.now() + timedelta(hours=3)
    clock.advance(timedelta(hours=2, minutes=59))
    with pytest.raises(PaymentPasswordLocked):
        members.verify_payment_password(uow_factory, member_tools, member_id, "135790")
    clock.advance(timedelta(minutes=1))
    members.verify_payment_password(uow_factory, member_tools, member_id, "135790")
    with pytest.raises(PaymentPasswordIncorrect) as fresh:
        members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
    assert fresh.value.tries_left == 4


def test_a_right_password_resets_the_count_of_misses(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, member_id: str
) -> None:
    for _ in range(4):
        with pytest.raises(PaymentPasswordIncorrect):
            members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
    members.verify_payment_password(uow_factory, member_tools, member_id, "135790")
    with pytest.raises(PaymentPasswordIncorrect) as wrong:
        members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
    assert wrong.value.tries_left == 4


def test_the_payment_password_is_changed_only_with_an_sms_code_which_also_unlocks_it(
    uow_factory: UnitOfWorkFactory, member_tools: MemberTools, member_id: str
) -> None:
    with pytest.raises(PaymentPasswordAlreadySet):
        members.set_payment_password(uow_factory, member_tools, member_id, "802468")
    for _ in range(5):
        with pytest.raises((PaymentPasswordIncorrect, PaymentPasswordLocked)):
            members.verify_payment_password(uow_factory, member_tools, member_id, "246801")
    members.send_payment_password_code(uow_factory, member_tools, member_id)
    members.change_payment_password(
        uow_factory, member_tools, member_id, last_code(member_tools, PHONE_ZHANG), "802468"
    )
    members.verify_payment_password(uow_factory, member_tools, member_id, "802468")
    with pytest.raises(PaymentPasswordIncorrect):
        members.verify_payment_password(uow_factory, member_tools, member_id, "135790")
