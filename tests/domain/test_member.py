"""The member domain's rules: masks, names, passwords, the payment password's lock, SMS code life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tianpay.domain.member import (
    InvalidLoginPassword,
    InvalidName,
    InvalidPaymentPassword,
    SmsCode,
    SmsPurpose,
    check_login_password,
    check_name,
    check_payment_password,
    lock_after_failure,
    mask_card_number,
    mask_id_number,
    mask_phone,
)

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def test_an_id_number_shows_only_its_first_and_last_character() -> None:
    assert mask_id_number("110105194912310022") == "1****************2"


def test_a_phone_shows_its_prefix_and_last_four_digits() -> None:
    assert mask_phone("13800138001") == "138****8001"


def test_a_card_number_shows_its_bin_and_last_four_digits() -> None:
    assert mask_card_number("6217990000000000014") == "621799*********0014"


def test_names_are_normalised_and_may_carry_the_middle_dot() -> None:
    assert check_name("  买买提·艾力  ") == "买买提·艾力"
    assert check_name("张　伟") == "张 伟"


@pytest.mark.parametrize("name", ["张", "", "张伟1", "<script>", "x" * 31])
def test_odd_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


@pytest.mark.parametrize("password", ["12345", "1234567", "abcdef", "111111", "123456", "987654"])
def test_weak_or_malformed_payment_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidPaymentPassword):
        check_payment_password(password)


def test_a_six_digit_payment_password_without_a_pattern_is_accepted() -> None:
    check_payment_password("135790")


def test_login_passwords_need_letters_and_digits() -> None:
    check_login_password("abc12345")
    for weak in ("abcdefgh", "12345678", "a1"):
        with pytest.raises(InvalidLoginPassword):
            check_login_password(weak)


def test_the_fifth_miss_in_a_row_locks_the_payment_password_for_three_hours() -> None:
    assert [lock_after_failure(n, NOW) for n in range(1, 5)] == [None] * 4
    assert lock_after_failure(5, NOW) == NOW + timedelta(hours=3)


def test_an_sms_code_lives_five_minutes_and_dies_after_five_misses() -> None:
    code = SmsCode("smc_1", "fp", SmsPurpose.REGISTER, "h", NOW + timedelta(minutes=5), NOW)
    assert code.is_live_at(NOW + timedelta(minutes=4, seconds=59))
    assert not code.is_live_at(NOW + timedelta(minutes=5))
    assert not SmsCode("smc_1", "fp", SmsPurpose.REGISTER, "h", NOW, NOW, failed_tries=4).is_exhausted
    assert SmsCode("smc_1", "fp", SmsPurpose.REGISTER, "h", NOW, NOW, failed_tries=5).is_exhausted
