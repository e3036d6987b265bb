"""Money as integer minor units with a currency, and the arithmetic a payment platform needs.

Fees round half-up to the fen (四舍五入, Chinese practice), never with Python's default banker's
rounding, and splits allocate remainders so that parts always add up to the whole exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

MAX_AMOUNT_MINOR = 10**12


class Currency(enum.Enum):
    """ISO 4217 currencies the platform books, with their minor-unit exponents."""

    CNY = ("CNY", 2, "156")

    def __init__(self, code: str, exponent: int, numeric: str) -> None:
        self.code = code
        self.exponent = exponent
        self.numeric = numeric

    @classmethod
    def parse(cls, code: str) -> Currency:
        """Returns the currency for an ISO alpha code; raises ValueError for one we do not book."""
        for currency in cls:
            if currency.code == code:
                return currency
        raise ValueError(f"unsupported currency {code!r}")


class CurrencyMismatch(ValueError):
    """Raised when amounts of different currencies are combined."""


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in integer minor units (fen for CNY). Never a float."""

    minor: int
    currency: Currency = Currency.CNY

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("Money.minor must be an int of minor units")

    @classmethod
    def zero(cls, currency: Currency = Currency.CNY) -> Money:
        return cls(0, currency)

    @classmethod
    def cny(cls, minor: int) -> Money:
        return cls(minor, Currency.CNY)

    def _check(self, other: Money) -> None:
        if other.currency is not self.currency:
            raise CurrencyMismatch(f"{self.currency.code} and {other.currency.code} do not mix")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    @property
    def is_positive(self) -> bool:
        return self.minor > 0

    @property
    def is_zero(self) -> bool:
        return self.minor == 0

    def format(self) -> str:
        """Renders the amount in major units with the currency code, e.g. ``12.34 CNY``."""
        exponent = self.currency.exponent
        sign = "-" if self.minor < 0 else ""
        major, minor = divmod(abs(self.minor), 10**exponent)
        return f"{sign}{major}.{minor:0{exponent}d} {self.currency.code}"

    def __str__(self) -> str:
        return self.format()


def divide_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (四舍五入), exact for any size of int."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def fee_for(amount: Money, rate_bps: int, minimum_minor: int = 0) -> Money:
    """The fee on an amount: ``round_half_up(amount × bps / 10000)``, at least the plan's minimum.

    The minimum never exceeds the amount itself, because a fee larger than the payment would leave
    the merchant owing money for being paid.
    """
    if rate_bps < 0 or minimum_minor < 0:
        raise ValueError("fee rates and minimums are never negative")
    if amount.minor <= 0:
        return Money.zero(amount.currency)
    fee_minor = divide_half_up(amount.minor * rate_bps, 10_000)
    fee_minor = min(max(fee_minor, minimum_minor), amount.minor)
    return Money(fee_minor, amount.currency)


def pro_rata(total: Money, part: Money, whole: Money) -> Money:
    """``total × part / whole`` rounded half-up: the share of ``total`` that ``part`` earns."""
    if whole.minor <= 0:
        raise ValueError("whole must be positive")
    return Money(divide_half_up(total.minor * part.minor, whole.minor), total.currency)


def fee_to_return(fee: Money, amount: Money, refunded_before: Money, refund: Money) -> Money:
    """The fee returned with a refund, computed cumulatively so the refunds' fee returns sum exactly.

    ``fee(refunded so far, including this one) − fee(refunded before)``: rounding never drifts, and
    the refund that completes the payment takes whatever remains of the fee.
    """
    after = refunded_before + refund
    if after.minor > amount.minor:
        raise ValueError("refunds may not exceed the amount paid")
    return pro_rata(fee, after, amount) - pro_rata(fee, refunded_before, amount)


def allocate(total: Money, weights: Sequence[int]) -> list[Money]:
    """Splits ``total`` by integer weights with the largest-remainder method; parts sum to total."""
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("weights must be non-negative and not all zero")
    weight_sum = sum(weights)
    sign = -1 if total.minor < 0 else 1
    magnitude = abs(total.minor)
    floors = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    left = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return [Money(sign * part, total.currency) for part in floors]
