"""Merchant use cases: sign-up (merchant, ledger accounts, fee plan, first key), key rotation, balance.

Generated private keys are written before the unit of work commits: if the commit fails, an unused
key file is left behind, which is harmless, whereas the other order could register a public key
whose private half was never delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tianpay.domain import ids
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.ledger import merchant_accounts, merchant_available, merchant_pending
from tianpay.domain.merchant import (
    DEFAULT_FEE_RATE_BPS,
    FeePlan,
    KeyAlgorithm,
    KeyStatus,
    Merchant,
    MerchantKey,
    MerchantStatus,
)
from tianpay.domain.money import Money
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.merchants import KeyIssuer, SecretVault
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

MAX_NAME_LENGTH = 200
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)


class InvalidMerchant(DomainError):
    code = "invalid_merchant"


@dataclass(frozen=True, slots=True)
class KeyTools:
    """What issuing a key needs besides the database: ids, the time, key material and the vault."""

    ids: IdGenerator
    clock: Clock
    issuer: KeyIssuer
    vault: SecretVault


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """Which kind of key to issue: the merchant's own public key, an HMAC secret, or (neither) a
    platform-generated RSA pair."""

    public_key_pem: bytes | None = None
    use_hmac: bool = False

    def __post_init__(self) -> None:
        if self.public_key_pem is not None and self.use_hmac:
            raise InvalidMerchant("choose a public key or an HMAC secret, not both", param="public_key")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key as handed to the merchant, once: where the private key went or the HMAC secret."""

    key_id: str
    algorithm: KeyAlgorithm
    private_key_path: Path | None
    hmac_secret: bytes | None


@dataclass(frozen=True, slots=True)
class NewMerchant:
    name: str
    key: KeyRequest = KeyRequest()
    webhook_url: str | None = None
    fee_rate_bps: int = DEFAULT_FEE_RATE_BPS


@dataclass(frozen=True, slots=True)
class MerchantCreated:
    merchant_id: str
    key: IssuedKey
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The new key, and the old keys with the time each stops being accepted."""

    new_key: IssuedKey
    retiring: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MerchantBalance:
    pending: Money
    available: Money


def create_merchant(uow_factory: UnitOfWorkFactory, tools: KeyTools, request: NewMerchant) -> MerchantCreated:
    """Creates the merchant with its two ledger accounts, a flat default fee plan and its first key."""
    name = request.name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidMerchant(f"a merchant name has 1–{MAX_NAME_LENGTH} characters", param="name")
    _check_webhook_url(request.webhook_url)
    merchant = Merchant(
        id=tools.ids.new(ids.MERCHANT),
        name=name,
        status=MerchantStatus.ACTIVE,
        webhook_url=request.webhook_url,
        webhook_secret=tools.issuer.new_webhook_secret(),
        created_at=tools.clock.now(),
    )
    plan = FeePlan.flat(merchant.id, request.fee_rate_bps)
    with uow_factory() as uow:
        uow.merchants.add(merchant)
        uow.ledger.ensure_accounts(merchant_accounts(merchant.id))
        uow.merchants.set_fee_plan(plan)
        issued = _issue_key(uow, tools, merchant.id, request.key)
        uow.commit()
    return MerchantCreated(merchant.id, issued, merchant.webhook_secret)


def set_webhook_url(uow_factory: UnitOfWorkFactory, merchant_id: str, webhook_url: str | None) -> None:
    """Points the merchant's notifications at ``webhook_url`` (None: keep them in the outbox only).

    Deliveries read the URL when they are sent, so events already waiting go to the new address.
    Raises InvalidMerchant for a URL that is not http(s), NotFound for an unknown merchant.
    """
    _check_webhook_url(webhook_url)
    with uow_factory() as uow:
        if not uow.merchants.set_webhook_url(merchant_id, webhook_url):
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        uow.commit()


def _check_webhook_url(webhook_url: str | None) -> None:
    if webhook_url is not None and not webhook_url.startswith(("https://", "http://")):
        raise InvalidMerchant("the webhook URL must be http(s)", param="webhook_url")


def rotate_key(
    uow_factory: UnitOfWorkFactory,
    tools: KeyTools,
    merchant_id: str,
    request: KeyRequest = KeyRequest(),
    *,
    overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
) -> KeyRotation:
    """Adds a new key and lets every currently valid key expire after ``overlap``.

    During the overlap both the old and the new key are accepted, so the merchant can roll the new
    key out to all its servers before the old one stops working.
    """
    now = tools.clock.now()
    retire_at = now + overlap
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        retiring: list[tuple[str, str]] = []
        for key in uow.merchants.keys_of(merchant_id):
            if not key.is_valid_at(now):
                continue
            expires_at = retire_at if key.expires_at is None else min(key.expires_at, retire_at)
            uow.merchants.expire_key(key.key_id, expires_at)
            retiring.append((key.key_id, expires_at.isoformat()))
        issued = _issue_key(uow, tools, merchant_id, request)
        uow.commit()
    return KeyRotation(issued, tuple(retiring))


def add_key(uow_factory: UnitOfWorkFactory, tools: KeyTools, merchant_id: str, request: KeyRequest) -> IssuedKey:
    """Adds a key beside the merchant's current ones (which stay valid): a rotation without an overlap end."""
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        issued = _issue_key(uow, tools, merchant_id, request)
        uow.commit()
    return issued


def merchant_balance(uow_factory: UnitOfWorkFactory, merchant_id: str) -> MerchantBalance:
    """The merchant's pending (collected, not yet settled) and available (settled) balances."""
    pending, available = merchant_pending(merchant_id).code, merchant_available(merchant_id).code
    with uow_factory() as uow:
        balances = uow.ledger.balances([pending, available])
    return MerchantBalance(pending=balances[pending], available=balances[available])


def _issue_key(uow: UnitOfWork, tools: KeyTools, merchant_id: str, request: KeyRequest) -> IssuedKey:
    key_id = tools.ids.new(ids.KEY)
    now = tools.clock.now()
    if request.use_hmac:
        secret = tools.issuer.new_shared_secret()
        sealed = tools.vault.seal(secret, context=key_id)
        uow.merchants.add_key(
            MerchantKey(key_id, merchant_id, KeyAlgorithm.HMAC_SHA256, None, sealed, KeyStatus.ACTIVE, now)
        )
        return IssuedKey(key_id, KeyAlgorithm.HMAC_SHA256, None, secret)
    if request.public_key_pem is not None:
        inspected = tools.issuer.inspect_public_key(request.public_key_pem)
        uow.merchants.add_key(
            MerchantKey(
                key_id, merchant_id, inspected.algorithm, inspected.public_key_pem, None, KeyStatus.ACTIVE, now
            )
        )
        return IssuedKey(key_id, inspected.algorithm, None, None)
    generated = tools.issuer.generate(merchant_id, key_id)
    uow.merchants.add_key(
        MerchantKey(key_id, merchant_id, generated.algorithm, generated.public_key_pem, None, KeyStatus.ACTIVE, now)
    )
    return IssuedKey(key_id, generated.algorithm, generated.private_key_path, None)
