"""ACP 5.1.0 signatures (signMethod 01) as BANKS.md fixes them.

Drop `signature`, sort the keys, join `k=v` with `&` using the raw values (every other field
present, empty ones included), SHA-256 → lowercase hex → RSA PKCS#1 v1.5 with SHA-256 over that
hex string → base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def signing_string(fields: Mapping[str, str]) -> str:
    return "&".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "signature")


def digest_hex(fields: Mapping[str, str]) -> str:
    return hashlib.sha256(signing_string(fields).encode("utf-8")).hexdigest()


def sign(fields: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    signature = key.sign(digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(fields: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    try:
        signature = base64.b64decode(fields.get("signature", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(signature, digest_hex(fields).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
