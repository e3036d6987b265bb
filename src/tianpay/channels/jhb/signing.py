"""JHB's 国密 envelope crypto: SM3withSM2 signatures (tongsuopy) and SM4-CBC bodies (cryptography).

The signature covers `json(head, sorted keys, no spaces) + "." + iv + "." + body` with the SM2
user ID `1234567812345678` (BANKS.md, JHB section) and travels as base64 of DER (r, s), the GM/T
0009 encoding JHB's onboarding pack names (`"signature_encoding": "DER"`, docs/banks/jhb.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto import serialization as gm_serialization
from tongsuopy.crypto.asymciphers import ec

from tianpay.channels.jhb.wire import Envelope, Head

# Tongsuo applies the GM/T 0009 default user ID itself when it computes Z; this constant documents
# it and lets tests hand the same ID to an independent implementation (gmalg).
SM2_USER_ID = b"1234567812345678"
SM4_KEY_SIZE_BYTES = 16
SM4_BLOCK_SIZE_BYTES = 16


class EnvelopeError(Exception):
    """An envelope that cannot be trusted or opened."""


class SignatureInvalid(EnvelopeError):
    """The signature is not JHB's (or ours) over this exact canonical string."""


class DecryptionFailed(EnvelopeError):
    """The body does not decrypt to a JSON object under the named data key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An SM2 private key; its repr never shows the key."""

    _key: Any = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SM2()))

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = gm_serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name.upper() != "SM2":
            raise ValueError("not an SM2 private key")
        return cls(key)

    def to_pem(self) -> str:
        """Unencrypted PKCS#8 PEM; whoever stores it must keep the file private (mode 0600)."""
        pem = self._key.private_bytes(
            gm_serialization.Encoding.PEM,
            gm_serialization.PrivateFormat.PKCS8,
            gm_serialization.NoEncryption(),
        )
        return bytes(pem).decode("ascii")

    @property
    def public_key(self) -> VerifyingKey:
        return VerifyingKey(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """SM3withSM2 with the default user ID; the DER-encoded signature."""
        return bytes(self._key.sign(message, ec.ECDSA(gm_hashes.SM3())))


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """An SM2 public key."""

    _key: Any = field(repr=False)

    @classmethod
    def from_text(cls, text: str) -> VerifyingKey:
        """A PEM SubjectPublicKeyInfo, or the uncompressed point `04‖x‖y` in hex (with or without 04)."""
        stripped = text.strip()
        if stripped.startswith("-----BEGIN"):
            key = gm_serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            point_hex = stripped if len(stripped) == 130 else "04" + stripped
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), bytes.fromhex(point_hex))
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name.upper() != "SM2":
            raise ValueError("not an SM2 public key")
        return cls(key)

    def to_pem(self) -> str:
        pem = self._key.public_bytes(gm_serialization.Encoding.PEM, gm_serialization.PublicFormat.SubjectPublicKeyInfo)
        return bytes(pem).decode("ascii")

    def to_point(self) -> bytes:
        """The uncompressed point `04‖x‖y` (65 bytes), the form gmalg and most SM2 tools take."""
        numbers = self._key.public_numbers()
        return b"\x04" + int(numbers.x).to_bytes(32, "big") + int(numbers.y).to_bytes(32, "big")

    def verify(self, signature_der: bytes, message: bytes) -> None:
        """Raises `SignatureInvalid` unless `signature_der` is a valid SM3withSM2 signature."""
        try:
            self._key.verify(signature_der, message, ec.ECDSA(gm_hashes.SM3()))
        except Exception as exc:
            # Tongsuo raises InvalidSignature for a wrong signature and InternalError for bytes that
            # are not DER at all; to the caller both mean "not signed by this key".
            raise SignatureInvalid(type(exc).__name__) from exc


def canonical_string(head: Mapping[str, str], iv_b64: str, body_b64: str) -> bytes:
    """What the signature covers: the head as sorted, space-free JSON, then `.iv.body`.

    Non-ASCII head values are written as UTF-8 rather than `\\u` escapes, as JHB's own Java JSON
    libraries do (docs/banks/jhb.md); in practice every head value is ASCII.
    """
    head_json = json.dumps(dict(head), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{head_json}.{iv_b64}.{body_b64}".encode()


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """SM4-CBC with PKCS#7 padding."""
    padder = padding.PKCS7(SM4_BLOCK_SIZE_BYTES * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of `sm4_cbc_encrypt`; raises `DecryptionFailed` for any malformed input."""
    if len(key) != SM4_KEY_SIZE_BYTES or len(iv) != SM4_BLOCK_SIZE_BYTES:
        raise DecryptionFailed("key and iv must be 16 bytes")
    if not ciphertext or len(ciphertext) % SM4_BLOCK_SIZE_BYTES:
        raise DecryptionFailed("the body is not a whole number of SM4 blocks")
    decryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(SM4_BLOCK_SIZE_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionFailed("bad padding") from exc


def seal(
    head: Head,
    body: Mapping[str, Any],
    data_key: bytes,
    signing_key: SigningKey,
    iv: bytes | None = None,
) -> Envelope:
    """Encrypts `body` under `data_key` with a fresh random IV and signs the result."""
    iv_bytes = iv if iv is not None else secrets.token_bytes(SM4_BLOCK_SIZE_BYTES)
    plaintext = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    iv_b64 = base64.b64encode(iv_bytes).decode("ascii")
    body_b64 = base64.b64encode(sm4_cbc_encrypt(data_key, iv_bytes, plaintext)).decode("ascii")
    raw_head = head.to_dict()
    signature = signing_key.sign(canonical_string(raw_head, iv_b64, body_b64))
    return Envelope(
        head=head, raw_head=raw_head, iv=iv_b64, body=body_b64, sign=base64.b64encode(signature).decode("ascii")
    )


def verify(envelope: Envelope, public_key: VerifyingKey) -> None:
    """Raises `SignatureInvalid` unless the holder of `public_key` signed this exact envelope."""
    signature = _b64decode(envelope.sign, SignatureInvalid)
    public_key.verify(signature, canonical_string(envelope.raw_head, envelope.iv, envelope.body))


def unseal(envelope: Envelope, data_key: bytes) -> dict[str, Any]:
    """Decrypts the body; raises `DecryptionFailed` unless it is a JSON object under this key.

    Call `verify` first: the body of an unverified envelope is attacker-chosen ciphertext.
    """
    iv = _b64decode(envelope.iv, DecryptionFailed)
    ciphertext = _b64decode(envelope.body, DecryptionFailed)
    plaintext = sm4_cbc_decrypt(data_key, iv, ciphertext)
    try:
        body = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # A wrong key that happens to leave valid padding still yields garbage, not JSON.
        raise DecryptionFailed("the body is not UTF-8 JSON") from exc
    if not isinstance(body, dict):
        raise DecryptionFailed("the body is not a JSON object")
    return body


def open_envelope(envelope: Envelope, public_key: VerifyingKey, data_keys: Mapping[str, bytes]) -> dict[str, Any]:
    """Verifies the signature, then decrypts with the data key the head names."""
    verify(envelope, public_key)
    data_key = data_keys.get(envelope.head.key_id)
    if data_key is None:
        raise DecryptionFailed(f"no data key {envelope.head.key_id!r}")
    return unseal(envelope, data_key)


def _b64decode(text: str, error: type[EnvelopeError]) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error("not valid base64") from exc
