"""A small AES-256-GCM vault for secrets the platform must be able to read back (HMAC key secrets).

Each sealed value is ``v1.<key tag>.<base64url(nonce ‖ ciphertext ‖ tag)>`` and is bound to a
context (e.g. the key id) as associated data, so a ciphertext copied onto another row does not
open. The 32-byte key comes from ``TIANPAY_VAULT_KEY_HEX`` or from a key file created at first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_NONCE_BYTES = 12
KEY_BYTES = 32


class AesGcmVault:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the vault key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        # Kept only to derive purpose keys (``derive_key``); never written or logged anywhere.
        self._key = key
        # A short, non-secret tag of the key lets a future key rotation tell which key sealed what.
        self._key_tag = hashlib.sha256(b"tianpay-vault-key-tag" + key).hexdigest()[:8]

    @classmethod
    def from_hex(cls, key_hex: str) -> AesGcmVault:
        try:
            return cls(bytes.fromhex(key_hex))
        except ValueError:
            # ``from None``: the original error could quote part of the key.
            raise ValueError("TIANPAY_VAULT_KEY_HEX must be 64 hex digits") from None

    @classmethod
    def from_key_file(cls, path: Path) -> AesGcmVault:
        """Reads the key file, creating it (mode 0600) with a random key the first time."""
        return cls.from_hex(read_or_create_secret_file(path, lambda: secrets.token_hex(KEY_BYTES)))

    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for one purpose (e.g. PII fingerprints), derived one-way with HKDF-SHA256.

        A derived key reveals nothing about the vault key, and each label gives an unrelated key.
        """
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label.encode()).derive(self._key)

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self._key_tag}.{payload}"

    def open(self, sealed: str, *, context: str) -> bytes:
        version, key_tag, payload = _split(sealed)
        if version != _VERSION or key_tag != self._key_tag:
            raise ValueError("sealed by another vault key or format")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise ValueError("the sealed value does not open with this key and context") from exc


def _split(sealed: str) -> tuple[str, str, str]:
    parts = sealed.split(".")
    if len(parts) != 3:
        raise ValueError("not a sealed vault value")
    return parts[0], parts[1], parts[2]


def read_or_create_secret_file(path: Path, make: Callable[[], str | bytes]) -> str:
    """The file's content, after creating it with ``make()`` (mode 0600) if it did not exist.

    The content is written to a private temporary file first and then hard-linked into place, which
    fails if the name exists: when two processes start together, one creates the file and the other
    reads exactly what the first wrote, never a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path.read_text().strip()
    value = make()
    data = value if isinstance(value, bytes) else (value + "\n").encode()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text().strip()
