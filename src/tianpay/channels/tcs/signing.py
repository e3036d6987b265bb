"""DES-family cryptography for the TCS card switch and its terminals: 3DES, PIN blocks, MACs.

Every key is handled as 8/16/24 raw bytes and widened to a 24-byte TripleDES key, because
``cryptography`` keeps 3DES only in ``hazmat.decrepit`` and warns on shorter keys
(research/protocols.md §1.6). Nothing here logs; keys and PIN blocks never leave these functions
except as ciphertext or MACs.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK_BYTES: Final = 8
CHECK_VALUE_BYTES: Final = 4


def widen_key(key: bytes) -> bytes:
    """An 8-, 16- or 24-byte DES key as the 24-byte 3DES key that computes the same function."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError("a DES key is 8, 16 or 24 bytes")


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    if len(data) % BLOCK_BYTES:
        raise ValueError("3DES ECB data must be whole 8-byte blocks")
    encryptor = Cipher(TripleDES(widen_key(key)), modes.ECB()).encryptor()  # noqa: S305 - ECB on single blocks is the PIN/MAC standard
    return encryptor.update(data) + encryptor.finalize()


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    if len(data) % BLOCK_BYTES:
        raise ValueError("3DES ECB data must be whole 8-byte blocks")
    decryptor = Cipher(TripleDES(widen_key(key)), modes.ECB()).decryptor()  # noqa: S305 - ECB on single blocks is the PIN/MAC standard
    return decryptor.update(data) + decryptor.finalize()


def check_value(key: bytes) -> bytes:
    """The key check value: the first 4 bytes of 3DES-encrypting 8 zero bytes with the clear key."""
    return encrypt_ecb(key, bytes(BLOCK_BYTES))[:CHECK_VALUE_BYTES]


def _zero_pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK_BYTES)


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


# ---- PIN blocks (ANSI X9.8 / ISO 9564 format 0, research/protocols.md §1.6) ----------------------


def clear_pin_block(pin: str, pan: str) -> bytes:
    """P1 XOR P2: P1 = 0, PIN length, PIN, F padding; P2 = 0000 and the 12 PAN digits before the check digit."""
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a PIN is 4–12 digits")
    if not (pan.isdigit() and len(pan) >= 13):
        raise ValueError("a PAN is at least 13 digits")
    p1 = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    p2 = bytes.fromhex("0000" + pan[-13:-1])
    return _xor(p1, p2)


def encrypt_pin_block(pin: str, pan: str, pik: bytes) -> bytes:
    """The 8-byte field 52: the format-0 PIN block under the PIN key."""
    return encrypt_ecb(pik, clear_pin_block(pin, pan))


def translate_pin_block(pin_block: bytes, *, from_key: bytes, to_key: bytes) -> bytes:
    """Re-encrypts a PIN block from the terminal's PIK to the zone PIN key (ZPK).

    The clear PIN block exists only inside this function, as a real HSM's translate command would
    keep it inside the HSM; it is never returned, stored or logged.
    """
    if len(pin_block) != BLOCK_BYTES:
        raise ValueError("a PIN block is 8 bytes")
    return encrypt_ecb(to_key, decrypt_ecb(from_key, pin_block))


# ---- MACs -----------------------------------------------------------------------------------------


def cup_ecb_mac(mak: bytes, mab: bytes) -> bytes:
    """The China UnionPay POS "ECB" MAC (research/protocols.md §1.6, BANKS.md TCS KAT).

    XOR the zero-padded MAB's 8-byte blocks; hex the result (16 uppercase ASCII characters);
    encrypt the left 8, XOR with the right 8, encrypt again; the MAC is the first 8 hex characters
    of that, as ASCII bytes.
    """
    folded = bytes(BLOCK_BYTES)
    padded = _zero_pad(mab)
    for offset in range(0, len(padded), BLOCK_BYTES):
        folded = _xor(folded, padded[offset : offset + BLOCK_BYTES])
    hexed = folded.hex().upper().encode("ascii")
    first = encrypt_ecb(mak, hexed[:BLOCK_BYTES])
    second = encrypt_ecb(mak, _xor(first, hexed[BLOCK_BYTES:]))
    return second.hex().upper().encode("ascii")[:BLOCK_BYTES]


def x919_mac(key: bytes, data: bytes) -> bytes:
    """ANSI X9.19 retail MAC: single-DES CBC under the left half, then decrypt right, encrypt left.

    ``key`` is 16 bytes (KL ‖ KR); the MAC is all 8 bytes of the final block.
    """
    if len(key) != 16:
        raise ValueError("an X9.19 key is 16 bytes")
    left, right = key[:8], key[8:]
    chained = bytes(BLOCK_BYTES)
    padded = _zero_pad(data)
    for offset in range(0, len(padded), BLOCK_BYTES):
        chained = encrypt_ecb(left, _xor(chained, padded[offset : offset + BLOCK_BYTES]))
    return encrypt_ecb(left, decrypt_ecb(right, chained))


def macs_match(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)
