"""Test-only stand-ins for HBB's keys and messages, written apart from the adapter and from banksim.

``FakeHbbPki`` makes a root CA and leaves the way a bank would (and the ways a forger would:
wrong CN, another root, expired); ``hbb_signed`` signs a message as HBB does, with its own
canonical string, so a bug shared by the adapter's signing and verifying paths cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
HBB_CN = "Huabei Bank Signing"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Huabei Bank"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


@dataclass(frozen=True)
class Authority:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def root(cls, cn: str = "Huabei Bank Root CA", *, not_after: datetime | None = None) -> Authority:
        key = new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=365))
            .not_valid_after(not_after or NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def leaf(
        self,
        cn: str = HBB_CN,
        *,
        key: rsa.RSAPrivateKey | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ca: bool = False,
        serial: int = 68759663125,
    ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = key or new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before or NOW - timedelta(days=30))
            .not_valid_after(not_after or NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return key, cert


def signing_string(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "signature")


def hbb_signed(fields: Mapping[str, str], key: rsa.RSAPrivateKey, cert: x509.Certificate) -> dict[str, str]:
    """A message signed as HBB signs its answers and notifications (BANKS.md "HBB")."""
    message = {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        **fields,
        "certId": str(cert.serial_number),
        "signPubKeyCert": pem(cert),
    }
    digest = hashlib.sha256(signing_string(message).encode("utf-8")).hexdigest()
    signature = key.sign(digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    message["signature"] = base64.b64encode(signature).decode("ascii")
    return message


def raw_answer(fields: Mapping[str, str]) -> bytes:
    """HBB's synchronous answer: raw ``k=v&k=v``, values not URL-encoded."""
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8")


def verify_platform_signature(fields: Mapping[str, str], cert: x509.Certificate) -> bool:
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    digest = hashlib.sha256(signing_string(fields).encode("utf-8")).hexdigest()
    try:
        public_key.verify(
            base64.b64decode(fields["signature"]), digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True
