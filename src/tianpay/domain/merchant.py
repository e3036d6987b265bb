"""Merchants, their API keys and their fee plans, as plain values.

A merchant signs API requests with one of its keys (the platform keeps only public keys, or an HMAC
secret encrypted by the vault) and pays a fee per payment method, in basis points with an optional
minimum. During a key rotation two keys are valid at once: the new one, and the old one until it
expires.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tianpay.domain.errors import DomainError
from tianpay.domain.money import Money, fee_for
from tianpay.domain.payment import PaymentMethod

# The payment methods of DESIGN.md §6, taken from the payment's own enum; a fee plan prices each of them.
PAYMENT_METHODS: tuple[str, ...] = tuple(method.value for method in PaymentMethod)
DEFAULT_FEE_RATE_BPS = 60
# A rate above 100 % would take more than the payment, which fee_for caps anyway; refuse it earlier.
MAX_FEE_RATE_BPS = 10_000


class MerchantStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class KeyAlgorithm(enum.Enum):
    """The RFC 9421 algorithms a merchant key may use; the value is the registered ``alg`` name."""

    RSA_V1_5_SHA256 = "rsa-v1_5-sha256"
    ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"

    @property
    def is_shared_secret(self) -> bool:
        return self is KeyAlgorithm.HMAC_SHA256


class KeyStatus(enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"


class UnknownPaymentMethod(DomainError):
    code = "unknown_payment_method"


class InvalidFeePlan(DomainError):
    code = "invalid_fee_plan"


class InvalidPublicKey(DomainError):
    """A merchant-supplied key that is not an RSA (≥ 2048 bits), ed25519 or P-256 public key."""

    code = "invalid_public_key"


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    status: MerchantStatus
    webhook_url: str | None
    webhook_secret: str
    created_at: datetime

    @property
    def is_active(self) -> bool:
        return self.status is MerchantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class MerchantKey:
    """One key a merchant signs with: a public key (PEM) or an encrypted shared secret."""

    key_id: str
    merchant_id: str
    algorithm: KeyAlgorithm
    public_key_pem: str | None
    secret_ciphertext: str | None
    status: KeyStatus
    created_at: datetime
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.algorithm.is_shared_secret and self.secret_ciphertext is None:
            raise ValueError("an hmac-sha256 key needs its encrypted secret")
        if not self.algorithm.is_shared_secret and self.public_key_pem is None:
            raise ValueError(f"a {self.algorithm.value} key needs its public key")

    def is_valid_at(self, now: datetime) -> bool:
        """Whether a signature made with this key may be accepted at ``now``."""
        if self.status is not KeyStatus.ACTIVE:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class FeeRate:
    """The price of one payment method: ``rate_bps`` of the amount, at least ``minimum_minor``."""

    method: str
    rate_bps: int
    minimum_minor: int = 0

    def __post_init__(self) -> None:
        if self.method not in PAYMENT_METHODS:
            raise UnknownPaymentMethod(f"unknown payment method {self.method!r}", param="method")
        if not 0 <= self.rate_bps <= MAX_FEE_RATE_BPS:
            raise InvalidFeePlan(f"a fee rate must be 0–{MAX_FEE_RATE_BPS} bps", param="rate_bps")
        if self.minimum_minor < 0:
            raise InvalidFeePlan("a fee minimum is never negative", param="minimum_minor")


@dataclass(frozen=True, slots=True)
class FeePlan:
    """What a merchant pays per payment method; every method is priced."""

    merchant_id: str
    rates: tuple[FeeRate, ...]

    def __post_init__(self) -> None:
        methods = [rate.method for rate in self.rates]
        if len(set(methods)) != len(methods):
            raise InvalidFeePlan("a fee plan prices each method once")

    @classmethod
    def flat(cls, merchant_id: str, rate_bps: int = DEFAULT_FEE_RATE_BPS, minimum_minor: int = 0) -> FeePlan:
        """The same rate for every payment method (the default plan of a new merchant)."""
        return cls(merchant_id, tuple(FeeRate(m, rate_bps, minimum_minor) for m in PAYMENT_METHODS))

    @classmethod
    def of(cls, merchant_id: str, rates: Iterable[FeeRate]) -> FeePlan:
        return cls(merchant_id, tuple(sorted(rates, key=lambda r: PAYMENT_METHODS.index(r.method))))

    def rate_for(self, method: str) -> FeeRate:
        for rate in self.rates:
            if rate.method == method:
                return rate
        raise UnknownPaymentMethod(f"the fee plan does not price {method!r}", param="method")

    def fee(self, method: str, amount: Money) -> Money:
        """The merchant's fee on a payment of ``amount`` by ``method`` (rounded half up)."""
        rate = self.rate_for(method)
        return fee_for(amount, rate.rate_bps, rate.minimum_minor)
