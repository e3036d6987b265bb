"""Onboarding with BCB: our RSA key, registered at ``POST /_sim/partners`` (docs/banks/onboarding.md),
and what BCB hands back (its public key, our USER_NAME), kept under ``<data-dir>/channels/bcb/``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ONBOARDING_FILE: Final = "onboarding.json"
KEY_FILE: Final = "signing_key.pem"


class OnboardingFailed(Exception):
    """BCB refused the registration or could not be reached."""


@dataclass(frozen=True, slots=True)
class BcbConfig:
    base_url: str
    user_name: str
    bank_public_key_pem: str
    key_pem: str = field(repr=False)
    timeout_s: float = 10.0

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_pem.encode("ascii"), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    @property
    def bank_public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(self.bank_public_key_pem.encode("ascii"))
        assert isinstance(key, rsa.RSAPublicKey)
        return key


def bcb_directory(data_dir: Path) -> Path:
    return data_dir / "channels" / "bcb"


def _ensure_key(directory: Path) -> str:
    path = directory / KEY_FILE
    if path.exists():
        return path.read_text("ascii")
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    path.touch(mode=0o600)
    path.write_text(pem, "ascii")
    return pem


def onboard_bcb(data_dir: Path, base_url: str, *, name: str = "天付支付", timeout_s: float = 10.0) -> BcbConfig:
    """Registers our key with BCB (idempotent: the same key gets the same USER_NAME) and persists it."""
    directory = bcb_directory(data_dir)
    key_pem = _ensure_key(directory)
    private = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    try:
        response = httpx.post(base_url.rstrip("/") + "/_sim/partners",
                              json={"name": name, "public_key_pem": public_pem}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise OnboardingFailed(f"BCB could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise OnboardingFailed(f"BCB refused the registration: {response.status_code} {response.text}")
    pack = response.json()
    record = {"base_url": base_url.rstrip("/"), "user_name": pack["user_name"],
              "bank_public_key_pem": pack["bcb_public_key_pem"]}
    path = directory / ONBOARDING_FILE
    path.write_text(json.dumps(record, ensure_ascii=False, indent=2), "utf-8")
    return BcbConfig(record["base_url"], record["user_name"], record["bank_public_key_pem"], key_pem, timeout_s)


def load_bcb_config(data_dir: Path, *, timeout_s: float = 10.0) -> BcbConfig | None:
    directory = bcb_directory(data_dir)
    path = directory / ONBOARDING_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text("utf-8"))
    return BcbConfig(record["base_url"], record["user_name"], record["bank_public_key_pem"],
                     (directory / KEY_FILE).read_text("ascii"), timeout_s)
