"""A test client for TCS written only with pyiso8583 and cryptography (no banksim.tcs code).

It frames, MACs (ANSI X9.19, written out independently of the switch's implementation) and
builds format-0 PIN blocks exactly as docs/banks/tcs.md specifies, so the tests check the wire
contract rather than the switch agreeing with itself.
"""

from __future__ import annotations

import copy
import socket
from typing import Any

import iso8583
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from iso8583.specs import default_ascii

SPEC: dict[str, Any] = copy.deepcopy(default_ascii)


def des_encrypt(key8: bytes, block: bytes) -> bytes:
    encryptor = Cipher(TripleDES(key8 * 3), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def des_decrypt(key8: bytes, block: bytes) -> bytes:
    decryptor = Cipher(TripleDES(key8 * 3), modes.ECB()).decryptor()
    return decryptor.update(block) + decryptor.finalize()


def x919(key16: bytes, data: bytes) -> bytes:
    """X9.19 by the book: CBC-DES under KL via cryptography's CBC mode, then D_KR, E_KL."""
    padded = data + b"\x00" * (-len(data) % 8)
    encryptor = Cipher(TripleDES(key16[:8] * 3), modes.CBC(b"\x00" * 8)).encryptor()
    last = (encryptor.update(padded) + encryptor.finalize())[-8:]
    return des_encrypt(key16[:8], des_decrypt(key16[8:], last))


def clear_pin_block(pin: str, pan: str) -> bytes:
    p1 = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    p2 = bytes.fromhex("0000" + pan[-13:-1])
    return bytes(a ^ b for a, b in zip(p1, p2, strict=True))


def encrypted_pin_block(zpk: bytes, pin: str, pan: str) -> str:
    encryptor = Cipher(TripleDES(zpk + zpk[:8]), modes.ECB()).encryptor()
    return (encryptor.update(clear_pin_block(pin, pan)) + encryptor.finalize()).hex().upper()


def encode(message: dict[str, str], zak: bytes | None, *, corrupt_mac: bool = False) -> bytes:
    fields = dict(message)
    if zak is not None:
        fields["128"] = "0" * 16
    raw, _ = iso8583.encode(fields, SPEC)
    body = bytes(raw)
    if zak is not None:
        mac = x919(zak, body[:-16])
        if corrupt_mac:
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        body = body[:-16] + mac.hex().upper().encode()
    return f"{len(body):04d}".encode() + body


class Client:
    """One TCP connection to TCS; `send` returns the decoded answer or None on timeout."""

    def __init__(self, host: str, port: int, zak: bytes) -> None:
        self.zak = zak
        self.sock = socket.create_connection((host, port), timeout=10)

    def close(self) -> None:
        self.sock.close()

    def send(
        self, message: dict[str, str], *, timeout_s: float = 10, corrupt_mac: bool = False
    ) -> dict[str, str] | None:
        self.sock.sendall(encode(message, self.zak, corrupt_mac=corrupt_mac))
        return self.receive(timeout_s)

    def receive(self, timeout_s: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout_s)
        try:
            length = int(self._exactly(4))
            body = self._exactly(length)
        except TimeoutError:
            return None
        decoded, _ = iso8583.decode(body, SPEC)
        if "128" in decoded:
            assert x919(self.zak, body[:-16]).hex().upper() == decoded["128"], "TCS's answer MAC is wrong"
        return dict(decoded)

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("TCS closed the connection")
            data += chunk
        return data
