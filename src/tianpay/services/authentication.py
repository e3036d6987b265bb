"""Request authentication use cases: finding the key a signature names, and refusing replays.

The RFC 9421 cryptography itself happens at the HTTP edge (entrypoints/api/auth.py); these
functions answer the two questions that need the database: which merchant and key material does a
key id stand for right now, and has this signature (or nonce) been seen before. ``authenticate``
answers both in one unit of work, with the edge's signature check run between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tianpay.domain.merchant import KeyAlgorithm
from tianpay.ports.merchants import SecretVault
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What verifies a merchant's signature: a public key PEM, or the opened HMAC secret."""

    key_id: str
    merchant_id: str
    algorithm: KeyAlgorithm
    material: bytes


@dataclass(frozen=True, slots=True)
class Authentication:
    """What ``authenticate`` found: the key (None: no valid key of an active merchant has that id),
    and whether the request's fingerprints had been seen before (a replay)."""

    key: VerificationKey | None
    is_replayed: bool = False


# Verifies the request against the key (raising when it does not verify) and returns the request's
# replay fingerprints; the HTTP edge supplies it, since the cryptography lives there.
SignatureCheck = Callable[[VerificationKey], Sequence[str]]


def authenticate(
    uow_factory: UnitOfWorkFactory,
    vault: SecretVault,
    key_id: str,
    now: datetime,
    check: SignatureCheck,
    expires_at: datetime,
    *,
    purge_due: Callable[[], datetime | None] | None = None,
) -> Authentication:
    """Looks the key up, lets ``check`` verify the signature, and remembers its fingerprints.

    One unit of work instead of two (docs/performance.md): the look-up and the replay record share a
    connection and a transaction. ``check`` runs between them and before anything is written, so a
    forged request (``check`` raises) leaves no fingerprint behind: it rolls the unit of work back,
    and an attacker cannot burn a merchant's nonces or fill the table without a valid signature.
    A replay is reported and nothing is committed. ``purge_due`` is asked only once the signature
    verified (so forged requests cannot claim the purge and starve it); when it answers a time,
    fingerprints expired before then are purged in the same transaction (bounded batches).
    """
    with uow_factory() as uow:
        key = _verification_key(uow, vault, key_id, now)
        if key is None:
            return Authentication(None)
        fingerprints = check(key)
        purge_before = None if purge_due is None else purge_due()
        if not _remember(uow, fingerprints, expires_at, purge_before):
            return Authentication(key, is_replayed=True)
        uow.commit()
    return Authentication(key)


def find_verification_key(
    uow_factory: UnitOfWorkFactory, vault: SecretVault, key_id: str, now: datetime
) -> VerificationKey | None:
    """The key if it exists, is valid at ``now`` and belongs to an active merchant; else None."""
    with uow_factory() as uow:
        return _verification_key(uow, vault, key_id, now)


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
        if not _remember(uow, fingerprints, expires_at, purge_before):
            return False
        uow.commit()
    return True


def _verification_key(uow: UnitOfWork, vault: SecretVault, key_id: str, now: datetime) -> VerificationKey | None:
    found = uow.merchants.get_key_with_merchant(key_id)
    if found is None:
        return None
    key, merchant = found
    if not key.is_valid_at(now) or not merchant.is_active:
        return None
    if key.algorithm.is_shared_secret:
        assert key.secret_ciphertext is not None
        material = vault.open(key.secret_ciphertext, context=key.key_id)
    else:
        assert key.public_key_pem is not None
        material = key.public_key_pem.encode()
    return VerificationKey(key.key_id, key.merchant_id, key.algorithm, material)


def _remember(
    uow: UnitOfWork, fingerprints: Sequence[str], expires_at: datetime, purge_before: datetime | None
) -> bool:
    if not uow.replays.remember(fingerprints, expires_at):
        return False
    if purge_before is not None:
        uow.replays.purge_expired(purge_before, PURGE_BATCH)
    return True
