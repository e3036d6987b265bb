"""The SDK's error tree: one class per kind of failure a merchant handles differently.

Every error carries what support needs to find the request in the platform's logs
(`request_id`), and `str(err)` includes it so that a logged message alone is enough.
"""

from __future__ import annotations


class TianpayError(Exception):
    """Base of every error the SDK raises."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.param = param
        self.request_id = request_id

    def __str__(self) -> str:
        if self.request_id is None:
            return self.message
        return f"Request {self.request_id}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, http_status={self.http_status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


class InvalidRequestError(TianpayError):
    """The platform rejected the request's content (400, 404, 422); retrying will not help."""


class AuthenticationError(TianpayError):
    """The platform did not accept the request signature or key (401)."""


class IdempotencyError(TianpayError):
    """The order number was used before with a different body (409 `idempotency_conflict`), or
    before its first answer's retention ran out (409 `idempotency_record_expired`)."""


class RateLimitError(TianpayError):
    """Too many requests (429); `retry_after_s` is the platform's hint, when it gave one."""

    retry_after_s: float | None = None


class APIError(TianpayError):
    """The platform failed (5xx); for a request with an order number, the outcome is unknown."""


class APIConnectionError(TianpayError):
    """The platform could not be reached or did not answer in time; the outcome is unknown."""


class SignatureVerificationError(TianpayError):
    """A response was not signed by the platform key, or its signature did not match."""


class WebhookVerificationError(TianpayError):
    """A webhook's signature, timestamp or body could not be trusted."""
