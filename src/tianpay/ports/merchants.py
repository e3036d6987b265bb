"""The merchant ports: the repository of merchants, keys and fee plans, and the key tooling.

Key material is made and inspected behind ``KeyIssuer`` (cryptography lives in adapters), and shared
secrets are sealed by ``SecretVault`` before they reach the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tianpay.domain.merchant import FeePlan, KeyAlgorithm, Merchant, MerchantKey


class MerchantRepository(Protocol):
    def add(self, merchant: Merchant) -> None: ...

    def get(self, merchant_id: str) -> Merchant | None: ...

    def add_key(self, key: MerchantKey) -> None: ...

    def get_key(self, key_id: str) -> MerchantKey | None: ...

    def get_key_with_merchant(self, key_id: str) -> tuple[MerchantKey, Merchant] | None:
        """The key and the merchant that owns it, read together (every signed request needs both)."""
        ...

    def keys_of(self, merchant_id: str) -> Sequence[MerchantKey]:
        """The merchant's keys, oldest first, whatever their status."""
        ...

    def expire_key(self, key_id: str, expires_at: datetime) -> None:
        """Sets when a key stops being accepted (the end of a rotation's overlap)."""
        ...

    def set_webhook_url(self, merchant_id: str, webhook_url: str | None) -> bool:
        """Changes where the merchant's notifications go; False when there is no such merchant."""
        ...

    def set_webhook_secret(self, merchant_id: str, webhook_secret: str) -> bool:
        """Replaces the secret webhooks are signed with; False when there is no such merchant."""
        ...

    def set_fee_plan(self, plan: FeePlan) -> None:
        """Replaces the merchant's fee plan."""
        ...

    def fee_plan(self, merchant_id: str) -> FeePlan | None: ...


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A key pair the platform generated: only the public half is kept in the database."""

    algorithm: KeyAlgorithm
    public_key_pem: str
    private_key_path: Path


@dataclass(frozen=True, slots=True)
class InspectedPublicKey:
    algorithm: KeyAlgorithm
    public_key_pem: str


class KeyIssuer(Protocol):
    def generate(self, merchant_id: str, key_id: str) -> GeneratedKey:
        """Makes an RSA-2048 pair and writes the private key where only its owner can read it."""
        ...

    def inspect_public_key(self, pem: bytes) -> InspectedPublicKey:
        """The algorithm a merchant-supplied public key signs with; raises InvalidPublicKey."""
        ...

    def new_shared_secret(self) -> bytes:
        """32 random bytes for an hmac-sha256 key."""
        ...

    def new_webhook_secret(self) -> str:
        """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
        ...


class SecretVault(Protocol):
    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypts ``plaintext`` bound to ``context`` (e.g. the key id); returns printable text."""
        ...

    def open(self, sealed: str, *, context: str) -> bytes:
        """Decrypts what ``seal`` returned for the same context; raises ValueError otherwise."""
        ...
