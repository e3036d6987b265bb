"""Request authentication use cases: finding the key a signature names, and refusing replays.

The RFC 9421 cryptography itself happens at the HTTP edge (entrypoints/api/auth.py); these
functions answer the two questions that need the database: which merchant and key material does a
key id stand for right now, and has this signature (or nonce) been seen before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tianpay.domain.merchant import KeyAlgorithm
from tianpay.ports.merchants import SecretVault
from tianpay.ports.unit_of_work import UnitOfWorkFactory

PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What verifies a merchant's signature: a public key PEM, or the opened HMAC secret."""

    key_id: str
    merchant_id: str
    algorithm: KeyAlgorithm
    material: bytes


def find_verification_key(
    uow_factory: UnitOfWorkFactory, vault: SecretVault, key_id: str, now: datetime
) -> VerificationKey | None:
    """The key if it exists, is valid at ``now`` and belongs to an active merchant; else None."""
    with uow_factory() as uow:
        key = uow.merchants.get_key(key_id)
        if key is None or not key.is_valid_at(now):
            return None
        merchant = uow.merchants.get(key.merchant_id)
    if merchant is None or not merchant.is_active:
        return None
    if key.algorithm.is_shared_secret:
        assert key.secret_ciphertext is not None
        material = vault.open(key.secret_ciphertext, context=key.key_id)
    else:
        assert key.public_key_pem is not None
        material = key.public_key_pem.encode()
    return VerificationKey(key.key_id, key.merchant_id, key.algorithm, material)


def remember_signature(
    uow_factory: UnitOfWorkFactory,
    fingerprints: Sequence[str],
    expires_at: datetime,
    *,
    purge_before: datetime | None = None,
) -> bool:
    """Records a signature's fingerprints; False when any was used before (a replay).

    With ``purge_before``, fingerprints that expired before then are deleted in the same
    transaction (in bounded batches), so the table stays the size of one freshness window.
    """
    with uow_factory() as uow:
        if not uow.replays.remember(fingerprints, expires_at):
            return False
        if purge_before is not None:
            uow.replays.purge_expired(purge_before, PURGE_BATCH)
        uow.commit()
    return True
