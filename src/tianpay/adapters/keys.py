"""Key material: merchant key pairs and imported public keys, and the platform's ed25519 key.

The platform generates RSA-2048 pairs for merchants who do not bring a key, writes the private half
to a 0600 file under the data directory for the merchant to collect, and keeps only the public
half. Its own ed25519 key signs every API response; the key id derives from the public key, so it
is stable for as long as the key file is.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tianpay.domain.merchant import InvalidPublicKey, KeyAlgorithm
from tianpay.ports.merchants import GeneratedKey, InspectedPublicKey

from .vault import read_or_create_secret_file

RSA_KEY_BITS = 2048
MIN_RSA_KEY_BITS = 2048
SHARED_SECRET_BYTES = 32
WEBHOOK_SECRET_BYTES = 24
PLATFORM_KEY_FILE = "platform_ed25519.pem"


def public_pem(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _private_pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private_file(path: Path, data: bytes) -> None:
    """Writes a new file only its owner can read; refuses to overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class FileKeyIssuer:
    """Makes merchant keys; generated private keys go to ``<merchants_dir>/<merchant>/<key>.pem``."""

    def __init__(self, merchants_dir: Path) -> None:
        self._merchants_dir = merchants_dir

    def generate(self, merchant_id: str, key_id: str) -> GeneratedKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        path = (self._merchants_dir / merchant_id / f"{key_id}.pem").resolve()
        write_private_file(path, _private_pem(private_key))
        return GeneratedKey(KeyAlgorithm.RSA_V1_5_SHA256, public_pem(private_key.public_key()), path)

    def inspect_public_key(self, pem: bytes) -> InspectedPublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise InvalidPublicKey("not a PEM public key (SubjectPublicKeyInfo)", param="public_key") from exc
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_KEY_BITS:
                raise InvalidPublicKey(f"RSA keys must have at least {MIN_RSA_KEY_BITS} bits", param="public_key")
            return InspectedPublicKey(KeyAlgorithm.RSA_V1_5_SHA256, public_pem(key))
        if isinstance(key, ed25519.Ed25519PublicKey):
            return InspectedPublicKey(KeyAlgorithm.ED25519, public_pem(key))
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return InspectedPublicKey(KeyAlgorithm.ECDSA_P256_SHA256, public_pem(key))
        raise InvalidPublicKey("keys must be RSA, ed25519 or ECDSA P-256", param="public_key")

    def new_shared_secret(self) -> bytes:
        return secrets.token_bytes(SHARED_SECRET_BYTES)

    def new_webhook_secret(self) -> str:
        return "whsec_" + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode()


@dataclass(frozen=True, slots=True)
class PlatformSigningKey:
    """The platform's ed25519 key that signs API responses (and ``v1a`` webhooks)."""

    key_id: str
    private_key: ed25519.Ed25519PrivateKey

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.public_key)


def platform_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "platform_" + hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_platform_key(keys_dir: Path) -> PlatformSigningKey:
    """Loads ``<keys_dir>/platform_ed25519.pem``, generating it (mode 0600) at first start."""
    pem = read_or_create_secret_file(
        keys_dir / PLATFORM_KEY_FILE, lambda: _private_pem(ed25519.Ed25519PrivateKey.generate())
    )
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{keys_dir / PLATFORM_KEY_FILE} does not hold an ed25519 private key")
    return PlatformSigningKey(platform_key_id(private_key.public_key()), private_key)
