"""The switch's DES-family cryptography: zone keys, ANSI X9.8 PIN blocks and the X9.19 MAC.

Keys are double-length (16 bytes) and widened to the 24-byte `K1‖K2‖K1` that `cryptography`'s
decrepit TripleDES expects (research/protocols.md §1.6). Nothing here logs; a clear PIN leaves
`pin_from_block` only as its return value, for one immediate comparison.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK_BYTES = 8


class PinBlockError(ValueError):
    """The decrypted PIN block is not a well-formed ANSI X9.8 format-0 block for this PAN."""


def widen(key: bytes) -> bytes:
    """An 8-, 16- or 24-byte DES key as the 24-byte 3DES key that computes the same function."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError("a DES key is 8, 16 or 24 bytes")


def encrypt_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(TripleDES(widen(key)), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def decrypt_block(key: bytes, block: bytes) -> bytes:
    decryptor = Cipher(TripleDES(widen(key)), modes.ECB()).decryptor()
    return decryptor.update(block) + decryptor.finalize()


def new_double_length_key() -> bytes:
    """A random 16-byte key with odd parity in every byte (as key-management systems issue)."""
    return bytes(_odd_parity(b) for b in secrets.token_bytes(16))


def check_value(key: bytes) -> str:
    """The key check value: first 3 bytes of 3DES(key, 8 zero bytes), uppercase hex."""
    return encrypt_block(key, bytes(BLOCK_BYTES))[:3].hex().upper()


def x919_mac(key: bytes, data: bytes) -> bytes:
    """ANSI X9.19 retail MAC: single-DES CBC under KL, then decrypt KR / encrypt KL; 8 bytes."""
    if len(key) != 16:
        raise ValueError("the X9.19 MAC takes a double-length key")
    left, right = key[:8], key[8:]
    padded = data + bytes(-len(data) % BLOCK_BYTES)
    chain = bytes(BLOCK_BYTES)
    for offset in range(0, len(padded), BLOCK_BYTES):
        block = bytes(a ^ b for a, b in zip(chain, padded[offset : offset + BLOCK_BYTES], strict=True))
        chain = encrypt_block(left, block)
    return encrypt_block(left, decrypt_block(right, chain))


def pan_field(pan: str) -> bytes:
    """P2 of format 0: `0000` and the 12 PAN digits left of the check digit, as 8 bytes."""
    return bytes.fromhex("0000" + pan[-13:-1])


def pin_from_block(zpk: bytes, encrypted_hex: str, pan: str) -> str:
    """Decrypt an F52 PIN block under the ZPK and return the PIN; raises `PinBlockError`."""
    try:
        encrypted = bytes.fromhex(encrypted_hex)
    except ValueError as error:
        raise PinBlockError("the PIN block is not hex") from error
    if len(encrypted) != BLOCK_BYTES or len(pan) < 13:
        raise PinBlockError("wrong PIN block or PAN length")
    clear = bytes(a ^ b for a, b in zip(decrypt_block(zpk, encrypted), pan_field(pan), strict=True)).hex().upper()
    length = int(clear[1], 16)
    pin, padding = clear[2 : 2 + length], clear[2 + length :]
    if clear[0] != "0" or not 4 <= length <= 12 or not pin.isdigit() or padding != "F" * len(padding):
        raise PinBlockError("not an ANSI X9.8 format-0 block for this card")
    return pin


def _odd_parity(byte: int) -> int:
    high = byte & 0xFE
    return high | (bin(high).count("1") % 2 == 0)
