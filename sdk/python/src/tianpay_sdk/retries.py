"""When a failed request may be sent again, and how long to wait first.

A request is retried only if repeating it cannot do something twice: a GET, or a POST whose
body carries the merchant's own order number, which the platform uses as its idempotency key.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

IDEMPOTENCY_FIELDS: Final = ("out_trade_no", "out_refund_no", "out_payout_no")
INITIAL_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 8.0
# A longer Retry-After than this is not a hint to wait but a sign to give up and tell the caller.
MAX_RETRY_AFTER_S: Final = 60.0


def is_safe_to_repeat(method: str, json_body: Mapping[str, Any] | None) -> bool:
    """Whether sending the request twice has the same effect as sending it once."""
    if method == "GET":
        return True
    if method != "POST" or json_body is None:
        return False
    return any(isinstance(json_body.get(field), str) and json_body[field] for field in IDEMPOTENCY_FIELDS)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_delay_s(retry_number: int, retry_after_s: float | None = None) -> float | None:
    """The wait before retry `retry_number` (1-based), or None when the platform asks for too long.

    The wait is exponential with jitter, so that many clients failed by one outage do not come
    back in step, and never shorter than the platform's Retry-After.
    """
    if retry_after_s is not None and retry_after_s > MAX_RETRY_AFTER_S:
        return None
    exponential_s = min(MAX_DELAY_S, INITIAL_DELAY_S * 2.0 ** (retry_number - 1))
    delay_s = exponential_s * (0.5 + random.random() / 2)
    return max(delay_s, retry_after_s or 0.0)


def parse_retry_after_s(value: str | None) -> float | None:
    """Reads a Retry-After header given in seconds or as an HTTP date; None when absent or bad."""
    if value is None:
        return None
    seconds = _seconds_or_date(value.strip())
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_or_date(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return (when - datetime.now(UTC)).total_seconds()
