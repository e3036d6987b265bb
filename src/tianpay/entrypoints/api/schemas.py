"""Shared request and response schemas of the merchant API: amounts, currency, the error envelope.

``AmountMinor`` and ``CurrencyCode`` are the field types every resource uses for money, so each
refuses the same inputs with the same error codes (``amount_too_small``, ``amount_too_large``,
``currency_unsupported``, or ``parameter_invalid`` for a wrong JSON type). Request models derive from
``RequestModel``, which forbids unknown fields.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from tianpay.domain.money import MAX_AMOUNT_MINOR, Currency

SUPPORTED_CURRENCIES: tuple[str, ...] = tuple(c.code for c in Currency)


def _check_amount(value: int) -> int:
    if value <= 0:
        raise PydanticCustomError("amount_too_small", "amount must be a positive integer number of fen")
    if value > MAX_AMOUNT_MINOR:
        raise PydanticCustomError("amount_too_large", "amount may not exceed 10^12 fen")
    return value


def _check_currency(value: str) -> str:
    if value not in SUPPORTED_CURRENCIES:
        raise PydanticCustomError("currency_unsupported", "currency must be one of: {supported}",
                                  {"supported": ", ".join(SUPPORTED_CURRENCIES)})
    return value


AmountMinor = Annotated[
    StrictInt,
    AfterValidator(_check_amount),
    Field(
        description="Amount in minor units (fen for CNY): a JSON integer, 1 to 10^12. No decimals, no strings.",
        json_schema_extra={"minimum": 1, "maximum": MAX_AMOUNT_MINOR},
        examples=[1999],
    ),
]

CurrencyCode = Annotated[
    StrictStr,
    AfterValidator(_check_currency),
    Field(
        description="ISO 4217 currency code; the platform books CNY only.",
        json_schema_extra={"enum": list(SUPPORTED_CURRENCIES)},
        examples=["CNY"],
    ),
]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (use strict field types for money)."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    type: str = Field(
        description="invalid_request_error | authentication_error | idempotency_error | rate_limit_error | api_error"
    )
    code: str = Field(description="The precise reason, stable and documented, e.g. amount_too_large.")
    message: str = Field(description="A human-readable explanation; never contains secrets or stack traces.")
    param: str | None = Field(default=None, description="The request field (or header) at fault, if any.")
    request_id: str = Field(description="The id of this request (also in the Request-Id header).")


class ErrorEnvelope(BaseModel):
    """Every failure of the merchant API has this body."""

    error: ErrorDetail


class MoneyOut(BaseModel):
    amount: int = Field(description="Minor units (fen).")
    currency: str


class BalanceOut(BaseModel):
    object: str = "balance"
    merchant_id: str
    pending: MoneyOut = Field(description="Collected for the merchant, not yet settled (T+1).")
    available: MoneyOut = Field(description="Settled to the merchant, awaiting payout.")


class PlatformKeyOut(BaseModel):
    key_id: str
    algorithm: str = "ed25519"
    public_key_pem: str


class PlatformKeysOut(BaseModel):
    object: str = "list"
    data: list[PlatformKeyOut]


class RotateKeyIn(RequestModel):
    public_key: str = Field(description="The new public key, PEM (SubjectPublicKeyInfo): RSA ≥ 2048, ed25519 or P-256.")
    overlap_s: StrictInt = Field(
        default=86_400, ge=0, le=7 * 86_400,
        description="How long the merchant's current keys stay valid next to the new one.",
    )


class RetiringKeyOut(BaseModel):
    key_id: str
    expires_at: str


class KeyOut(BaseModel):
    object: str = "key"
    key_id: str
    algorithm: str
    retiring: list[RetiringKeyOut]
