"""tianpay-sdk: the merchant's client for the Tianpay payment platform.

`TianpayClient` signs requests (RFC 9421), verifies the platform's signed responses and raises
the errors below; `verify_webhook` checks Standard Webhooks notifications.
"""

from .client import TianpayClient, __version__
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    RateLimitError,
    SignatureVerificationError,
    TianpayError,
    WebhookVerificationError,
)
from .webhooks import verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "IdempotencyError",
    "InvalidRequestError",
    "RateLimitError",
    "SignatureVerificationError",
    "TianpayClient",
    "TianpayError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
