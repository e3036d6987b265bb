"""Bank call metrics, taken at the one place every service reaches a bank: the registry's accessors.

``observed(channel, bank, interface)`` wraps a channel so each public method call is timed and
counted by bank, interface, operation and outcome (the ``outcome`` of the answer when it has one,
``ok`` when it has none, ``error`` when the call raised). The metrics are registered in no registry
here; ``entrypoints/metrics.py`` exposes them.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Histogram

T = TypeVar("T")

# Bank answers take from tens of milliseconds to the timeout (10 s by default).
BANK_CALL_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

BANK_CALL_SECONDS = Histogram(
    "tianpay_bank_call_duration_seconds",
    "Time a bank call took, by bank, interface and operation.",
    ("bank", "interface", "operation"),
    buckets=BANK_CALL_BUCKETS_S,
    registry=None,
)
BANK_CALLS = Counter(
    "tianpay_bank_calls",
    "Bank calls by bank, interface, operation and outcome (succeeded, failed, pending, unknown, not_submitted, "
    "ok, error).",
    ("bank", "interface", "operation", "outcome"),
    registry=None,
)


class _Observed:
    """A channel whose public method calls are timed and counted; everything else passes through."""

    __slots__ = ("_bank", "_channel", "_interface")

    def __init__(self, channel: object, bank: str, interface: str) -> None:
        self._channel = channel
        self._bank = bank
        self._interface = interface

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._channel, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return _timed(attribute, self._bank, self._interface, name)


def _timed(method: Callable[..., Any], bank: str, interface: str, operation: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = method(*args, **kwargs)
            outcome = outcome_of(result)
            return result
        finally:
            BANK_CALL_SECONDS.labels(bank, interface, operation).observe(time.perf_counter() - started)
            BANK_CALLS.labels(bank, interface, operation, outcome).inc()

    return call


def outcome_of(result: object) -> str:
    """The answer's outcome (``ChannelResult.outcome`` and the like), or ``ok`` for other answers."""
    outcome = getattr(result, "outcome", None)
    if isinstance(outcome, enum.Enum):
        return str(outcome.value)
    return "ok"


def observed(channel: T, bank: str, interface: str) -> T:
    """``channel`` with its calls measured; typed as the channel, which it stands in for."""
    if isinstance(channel, _Observed):
        return channel
    return cast(T, _Observed(channel, bank, interface))
