"""Known answers for TCS's cryptography: DES, ANSI X9.19, X9.8 PIN blocks, and the switch's
implementation checked against the test kit's independent one.
"""

from __future__ import annotations

from banksim.tcs import crypto
from tests.banksim.tcs.kit import clear_pin_block, des_encrypt, encrypted_pin_block, x919

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MESSAGE = b"Now is the time for all "
# Computed with the kit's by-the-book implementation (cryptography's CBC mode, then D_KR / E_KL).
MESSAGE_MAC = "A1C72E74EA3FA9B6"


def test_the_classic_des_vector_holds_with_a_widened_key() -> None:
    assert des_encrypt(bytes.fromhex("0123456789ABCDEF"), bytes.fromhex("4E6F772069732074")).hex().upper() == (
        "3FA40E8A984D4815"
    )


def test_the_x919_known_answer() -> None:
    assert x919(KEY, MESSAGE).hex().upper() == MESSAGE_MAC
    assert crypto.x919_mac(KEY, MESSAGE).hex().upper() == MESSAGE_MAC


def test_the_switch_x919_mac_matches_an_independent_implementation() -> None:
    for data in (MESSAGE, b"0200", bytes(range(37)), bytes(64)):
        assert crypto.x919_mac(KEY, data) == x919(KEY, data)


def test_x919_with_equal_halves_degenerates_to_single_des_cbc_mac() -> None:
    single = bytes.fromhex("0123456789ABCDEF")
    data = MESSAGE
    chain = bytes(8)
    for offset in range(0, len(data), 8):
        chain = des_encrypt(single, bytes(a ^ b for a, b in zip(chain, data[offset : offset + 8], strict=True)))
    assert crypto.x919_mac(single * 2, data) == chain


def test_the_x98_format0_example_of_protocols_md() -> None:
    assert clear_pin_block("123456", "1234567890123456").hex().upper() == "0612713176FEDCBA"


def test_the_switch_recovers_a_pin_from_an_encrypted_block() -> None:
    pan = "6217990000000000014"
    assert crypto.pin_from_block(KEY, encrypted_pin_block(KEY, "123456", pan), pan) == "123456"


def test_new_keys_have_odd_parity_and_a_six_digit_check_value() -> None:
    key = crypto.new_double_length_key()
    assert all(bin(b).count("1") % 2 == 1 for b in key)
    assert len(crypto.check_value(key)) == 6
