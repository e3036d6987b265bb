"""Onboarding with HBB: the platform's own signing key and certificate, and HBB's trust material.

At a real bank certificates are exchanged out of band; HBB's simulator takes them at
``POST /_sim/partners`` (docs/banks/onboarding.md). ``onboard_hbb`` keeps our key under
``<data-dir>/channels/hbb/``, registers our certificate, and writes what HBB handed back (merId,
root CA, encryption certificate) to ``onboarding.json``; ``load_hbb_config`` reads it all back.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tianpay.channels.hbb import signing
from tianpay.channels.hbb.config import HbbConfig

ONBOARDING_FILE: Final = "onboarding.json"
KEY_FILE: Final = "signing_key.pem"
CERT_FILE: Final = "signing_cert.pem"
PARTNERS_PATH: Final = "/_sim/partners"
PLATFORM_NAME: Final = "天付支付"
PLATFORM_SIGNING_CN: Final = "Tianpay HBB Signing"
CERT_VALIDITY: Final = timedelta(days=3650)


class OnboardingFailed(Exception):
    """HBB refused the registration, could not be reached, or handed back material that does not fit."""


@dataclass(frozen=True, slots=True)
class PlatformIdentity:
    """The platform's RSA signing key and the self-signed certificate HBB registers it by."""

    key_pem: str
    cert_pem: str

    def __repr__(self) -> str:
        return "PlatformIdentity(key_pem=<hidden>, cert_pem=…)"

    @property
    def cert_id(self) -> str:
        return signing.cert_id(signing.load_certificate(self.cert_pem))


def hbb_directory(data_dir: Path) -> Path:
    return data_dir / "channels" / "hbb"


def ensure_identity(directory: Path, *, now: datetime | None = None) -> PlatformIdentity:
    """Loads our HBB signing key and certificate, creating them at first use (key file mode 0600)."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if key_path.exists() and cert_path.exists():
        return PlatformIdentity(key_path.read_text("ascii"), cert_path.read_text("ascii"))
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = _self_signed(key, now or datetime.now(UTC))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    _write_private(key_path, key_pem)
    # The certificate is written last: its presence next to the key marks a complete identity.
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert_path.write_text(cert_pem, "ascii")
    return PlatformIdentity(key_pem, cert_pem)


def onboard_hbb(
    data_dir: Path,
    base_url: str,
    *,
    name: str = PLATFORM_NAME,
    mer_id: str | None = None,
    http_client: httpx.Client | None = None,
    timeout_s: float = 10.0,
) -> HbbConfig:
    """Registers the platform with HBB (idempotent: the same key gets the same merId) and persists it.

    ``mer_id`` asks for a particular merchant number; by default HBB assigns one.
    """
    directory = hbb_directory(data_dir)
    identity = ensure_identity(directory)
    request: dict[str, Any] = {"name": name, "certificate_pem": identity.cert_pem}
    if mer_id is not None:
        request["partner_id"] = mer_id
    pack = _register(base_url.rstrip("/"), request, http_client, timeout_s)
    record = _record(base_url.rstrip("/"), pack, identity)
    config = _config(record, identity, timeout_s)
    # The material is checked before anything is written, so a bad pack never reaches the file.
    _check_pack(pack, config)
    path = directory / ONBOARDING_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), "utf-8")
    tmp.replace(path)
    return config


def load_hbb_config(data_dir: Path, *, timeout_s: float = 10.0) -> HbbConfig | None:
    """The HBB configuration persisted by ``onboard_hbb``, or None when the platform never onboarded."""
    directory = hbb_directory(data_dir)
    path = directory / ONBOARDING_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text("utf-8"))
    identity = PlatformIdentity((directory / KEY_FILE).read_text("ascii"), (directory / CERT_FILE).read_text("ascii"))
    return _config(record, identity, timeout_s)


def _register(
    base_url: str, request: dict[str, Any], http_client: httpx.Client | None, timeout_s: float
) -> dict[str, Any]:
    client = http_client or httpx.Client(timeout=timeout_s)
    try:
        response = client.post(base_url + PARTNERS_PATH, json=request)
    except httpx.HTTPError as error:
        raise OnboardingFailed(f"HBB could not be reached at {base_url}: {type(error).__name__}") from None
    finally:
        if http_client is None:
            client.close()
    if response.status_code != 200:
        raise OnboardingFailed(f"HBB refused the registration: HTTP {response.status_code} {response.text[:200]}")
    try:
        pack = response.json()
    except ValueError:
        raise OnboardingFailed("HBB's onboarding answer is not JSON") from None
    if not isinstance(pack, dict):
        raise OnboardingFailed("HBB's onboarding answer is not a JSON object")
    return pack


def _record(base_url: str, pack: dict[str, Any], identity: PlatformIdentity) -> dict[str, Any]:
    """What onboarding.json keeps: HBB's answer minus nothing secret (our key stays in its own file)."""
    for field in ("mer_id", "cert_id", "root_ca_pem", "encrypt_cert_pem"):
        if not isinstance(pack.get(field), str) or not pack[field]:
            raise OnboardingFailed(f"HBB's onboarding answer lacks {field}")
    if pack["cert_id"] != identity.cert_id:
        raise OnboardingFailed("HBB registered our key under a certId other than our certificate's serial")
    return {
        "bank": "HBB",
        "base_url": base_url,
        "mer_id": pack["mer_id"],
        "cert_id": pack["cert_id"],
        "hbb_root_ca_pem": pack["root_ca_pem"],
        "hbb_encryption_cert_pem": pack["encrypt_cert_pem"],
        "hbb_encryption_cert_id": pack.get("encrypt_cert_id"),
        "hbb_signing_cert_id": pack.get("signing_cert_id"),
        "key_file": KEY_FILE,
        "cert_file": CERT_FILE,
    }


def _config(record: dict[str, Any], identity: PlatformIdentity, timeout_s: float) -> HbbConfig:
    return HbbConfig(
        base_url=str(record["base_url"]),
        mer_id=str(record["mer_id"]),
        signing_key_pem=identity.key_pem,
        hbb_root_ca_pem=str(record["hbb_root_ca_pem"]),
        hbb_encryption_cert_pem=str(record["hbb_encryption_cert_pem"]),
        signing_cert_pem=identity.cert_pem,
        cert_id=str(record["cert_id"]),
        timeout_s=timeout_s,
    )


def _check_pack(pack: dict[str, Any], config: HbbConfig) -> None:
    """HBB's own signing certificate, when handed over, must pass the adapter's checks itself."""
    try:
        root = signing.load_certificate(config.hbb_root_ca_pem)
        signing.load_certificate(config.hbb_encryption_cert_pem).verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise OnboardingFailed(f"HBB's certificates do not fit together: {type(error).__name__}") from None
    bank_cert = pack.get("signing_cert_pem")
    if not isinstance(bank_cert, str):
        return
    try:
        certificate = signing.load_certificate(bank_cert)
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise OnboardingFailed(
            f"HBB's signing certificate does not chain to its root: {type(error).__name__}"
        ) from None
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [signing.HBB_SIGNING_CN]:
        raise OnboardingFailed("HBB's signing certificate is not named Huabei Bank Signing")


def _self_signed(key: rsa.RSAPrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tianpay"),
            x509.NameAttribute(NameOID.COMMON_NAME, PLATFORM_SIGNING_CN),
        ]
    )
    # ACP certIds are Java longs in practice, so the serial is a positive 63-bit number.
    serial = secrets.randbits(62) | (1 << 62)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, text: str) -> None:
    # The key is created with mode 0600 from the start, never world-readable even for an instant.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
