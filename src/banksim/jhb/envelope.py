"""JHB's JSON envelope: `{"head", "iv", "body", "sign"}` sealed with SM4-CBC and signed with SM2.

Pure functions only: `seal` builds an envelope, `parse` checks its shape, `verify` checks the
signature and `unseal` decrypts the body. The same code seals requests (in tests), answers and
notifications, so both directions are bit-for-bit the same format (BANKS.md, JHB section).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tongsuopy.crypto.asymciphers import ec

from banksim.jhb import crypto

ENVELOPE_VERSION = "2.0"
HEAD_FIELDS = ("version", "partner_id", "service", "req_no", "req_time", "key_id")


class EnvelopeMalformed(Exception):
    """The message is not an envelope: wrong JSON shape, missing head fields, bad base64."""


@dataclass(frozen=True, slots=True)
class Head:
    version: str
    partner_id: str
    service: str
    req_no: str
    req_time: str
    key_id: str

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in HEAD_FIELDS}


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """An envelope whose shape is checked but whose signature and body are not (yet)."""

    head: Head
    raw_head: dict[str, str]
    iv_b64: str
    body_b64: str
    sign_b64: str

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.raw_head, "iv": self.iv_b64, "body": self.body_b64, "sign": self.sign_b64}


def canonical_string(head: Mapping[str, str], iv_b64: str, body_b64: str) -> bytes:
    """What the signature covers: the head as sorted, space-free JSON, then `.iv.body`.

    Every member of the head that was sent is covered, not only the six known ones, so nothing in
    the head can be added or altered without breaking the signature. Non-ASCII is written as UTF-8
    rather than `\\u` escapes (the Java JSON libraries JHB's partners use do the same).
    """
    head_json = json.dumps(dict(head), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{head_json}.{iv_b64}.{body_b64}".encode()


def seal(
    head: Head,
    body: Mapping[str, Any],
    data_key: bytes,
    signing_key: ec.EllipticCurvePrivateKey,
    iv: bytes | None = None,
) -> dict[str, Any]:
    """Encrypt `body` under `data_key`, sign with `signing_key`, and return the envelope as JSON data."""
    iv_bytes = iv if iv is not None else crypto.new_iv()
    plaintext = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")).encode()
    iv_b64 = base64.b64encode(iv_bytes).decode("ascii")
    body_b64 = base64.b64encode(crypto.sm4_cbc_encrypt(data_key, iv_bytes, plaintext)).decode("ascii")
    raw_head = head.to_dict()
    signature = crypto.sm2_sign(signing_key, canonical_string(raw_head, iv_b64, body_b64))
    return {
        "head": raw_head,
        "iv": iv_b64,
        "body": body_b64,
        "sign": base64.b64encode(signature).decode("ascii"),
    }


def parse(message: Any) -> SealedEnvelope:
    """Check the envelope's shape; raise `EnvelopeMalformed` if it is not one."""
    if not isinstance(message, dict):
        raise EnvelopeMalformed("the message is not a JSON object")
    raw_head = message.get("head")
    if not isinstance(raw_head, dict) or not all(isinstance(v, str) for v in raw_head.values()):
        raise EnvelopeMalformed("head must be an object of strings")
    missing = [name for name in HEAD_FIELDS if not raw_head.get(name)]
    if missing:
        raise EnvelopeMalformed(f"head lacks {', '.join(missing)}")
    parts = {name: message.get(name) for name in ("iv", "body", "sign")}
    for name, value in parts.items():
        if not isinstance(value, str) or not value:
            raise EnvelopeMalformed(f"{name} must be a non-empty base64 string")
    head = Head(**{name: raw_head[name] for name in HEAD_FIELDS})
    return SealedEnvelope(
        head=head,
        raw_head=dict(raw_head),
        iv_b64=str(parts["iv"]),
        body_b64=str(parts["body"]),
        sign_b64=str(parts["sign"]),
    )


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeMalformed(f"{what} is not valid base64") from exc


def verify(envelope: SealedEnvelope, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise `crypto.SignatureInvalid` unless the sender's SM2 key signed this envelope."""
    try:
        signature = base64.b64decode(envelope.sign_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise crypto.SignatureInvalid("sign is not valid base64") from exc
    message = canonical_string(envelope.raw_head, envelope.iv_b64, envelope.body_b64)
    crypto.sm2_verify(public_key, signature, message)


def unseal(envelope: SealedEnvelope, data_key: bytes) -> dict[str, Any]:
    """Decrypt the body; raise `crypto.DecryptionFailed` if it is not a JSON object under this key."""
    try:
        iv = _b64decode(envelope.iv_b64, "iv")
        ciphertext = _b64decode(envelope.body_b64, "body")
    except EnvelopeMalformed as exc:
        raise crypto.DecryptionFailed(str(exc)) from exc
    plaintext = crypto.sm4_cbc_decrypt(data_key, iv, ciphertext)
    try:
        body = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        # A wrong key that happens to leave valid padding still yields garbage, not JSON.
        raise crypto.DecryptionFailed("the body is not UTF-8 JSON") from exc
    if not isinstance(body, dict):
        raise crypto.DecryptionFailed("the body is not a JSON object")
    return body
