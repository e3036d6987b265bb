"""Known-answer tests for the TCS/terminal cryptography (BANKS.md TCS; research/protocols.md §1.6)."""

from __future__ import annotations

from tianpay.channels.tcs.signing import (
    check_value,
    clear_pin_block,
    cup_ecb_mac,
    decrypt_ecb,
    encrypt_ecb,
    encrypt_pin_block,
    translate_pin_block,
    x919_mac,
)
from tianpay.entrypoints.pos_front import codec

# A real captured 0200 (q.cnblogs.com/q/128930), quoted in BANKS.md's TCS section.
CAPTURED_0200 = bytes.fromhex(
    "007f600003000060321032007202003020048000c08015000000000000001234000002030099303030303030303139"
    "353237313831383232313738373531353600192600000100060000000000435f01123238343431323334353637383930"
    "313233345f03063136303033365f04063230303832365c0230314233413039324145"
)
KAT_MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")


def test_the_cup_ecb_mac_of_the_captured_purchase_is_b3a092ae() -> None:
    frame = codec.decode(CAPTURED_0200[2:])
    assert cup_ecb_mac(KAT_MAK, frame.mab) == b"B3A092AE"
    assert frame.mac == b"B3A092AE"
    assert frame.fields["4"] == "000000001234"
    assert frame.fields["41"] == "00000001"


def test_encoding_the_captured_purchase_again_gives_the_same_bytes() -> None:
    frame = codec.decode(CAPTURED_0200[2:])
    fields = {k: v for k, v in frame.fields.items() if k not in ("p", "64")}
    again = codec.encode(fields, mak=KAT_MAK, tpdu=frame.tpdu, header=frame.header)
    assert again == CAPTURED_0200


def test_the_x98_format_0_pin_block_of_the_textbook_example() -> None:
    assert clear_pin_block("123456", "1234567890123456") == bytes.fromhex("0612713176FEDCBA")


def test_a_pin_block_translated_from_pik_to_zpk_decrypts_to_the_same_clear_block() -> None:
    pik, zpk = bytes(range(16)), bytes(range(16, 32))
    under_pik = encrypt_pin_block("123456", "6217990000000000014", pik)
    under_zpk = translate_pin_block(under_pik, from_key=pik, to_key=zpk)
    assert decrypt_ecb(zpk, under_zpk) == clear_pin_block("123456", "6217990000000000014")


def test_the_classic_des_vector_holds_with_widened_keys() -> None:
    key = bytes.fromhex("0123456789ABCDEF")
    assert encrypt_ecb(key, bytes.fromhex("4E6F772069732074")).hex().upper() == "3FA40E8A984D4815"


def test_x919_with_equal_halves_is_the_single_des_cbc_mac() -> None:
    key = bytes.fromhex("0123456789ABCDEF")
    data = b"0200 some message"
    chained = bytes(8)
    padded = data + bytes(-len(data) % 8)
    for i in range(0, len(padded), 8):
        chained = encrypt_ecb(key, bytes(a ^ b for a, b in zip(chained, padded[i : i + 8], strict=True)))
    assert x919_mac(key + key, data) == chained


def test_a_check_value_is_four_bytes_of_the_encrypted_zero_block() -> None:
    key = bytes(range(16))
    assert check_value(key) == encrypt_ecb(key, bytes(8))[:4]
