"""A circuit breaker per channel: a bank that keeps failing is taken out of rotation for a while.

``closed`` counts consecutive bad results (FAILED, NOT_SUBMITTED, timeouts) inside a window; at the
threshold it ``opens``. After the cool-down one caller may ``probe`` (``half_open``); the probe's
success closes the breaker, its failure opens it again. Pure: the time is always passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Signal(enum.StrEnum):
    """What one call told us about the channel's health (not about the payer)."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    # Says nothing about the bank (a payer's own decline, a wrong SMS code): counted neither way.
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    window: timedelta = timedelta(seconds=60)
    cool_down: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold is at least 1")


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """The breaker of one channel as stored; ``version`` makes every write a compare-and-set."""

    channel: str
    state: BreakerState
    consecutive_failures: int
    window_started_at: datetime | None
    opened_at: datetime | None
    probe_started_at: datetime | None
    updated_at: datetime
    version: int = 0
    last_failure: str | None = None

    @classmethod
    def fresh(cls, channel: str, now: datetime) -> ChannelHealth:
        return cls(channel, BreakerState.CLOSED, 0, None, None, None, now)

    def admits(self, policy: BreakerPolicy, now: datetime) -> bool:
        """Whether a call may go to this channel now (a half-open breaker admits its probe only)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return self.opened_at is None or now >= self.opened_at + policy.cool_down
        # Half-open with a probe out: a probe that never reported (a crashed process) is replaced
        # after another cool-down, so the breaker cannot stay stuck.
        return self.probe_started_at is None or now >= self.probe_started_at + policy.cool_down

    def admitted(self, policy: BreakerPolicy, now: datetime) -> ChannelHealth:
        """The breaker after admitting a call: an open breaker past its cool-down lets one probe out."""
        if self.state is BreakerState.CLOSED:
            return self
        if not self.admits(policy, now):
            raise ValueError("the breaker does not admit a call now")
        return replace(self, state=BreakerState.HALF_OPEN, probe_started_at=now, updated_at=now)

    def recorded(self, signal: Signal, policy: BreakerPolicy, now: datetime, *, failure: str = "") -> ChannelHealth:
        """The breaker after a call's result."""
        if signal is Signal.NEUTRAL:
            return self
        if signal is Signal.HEALTHY:
            if self.state is BreakerState.CLOSED and self.consecutive_failures == 0:
                return self
            return replace(
                self, state=BreakerState.CLOSED, consecutive_failures=0, window_started_at=None,
                opened_at=None, probe_started_at=None, updated_at=now,
            )
        if self.state is not BreakerState.CLOSED:
            # A failed probe (or a late failure while open) starts a new cool-down.
            return replace(
                self, state=BreakerState.OPEN, opened_at=now, probe_started_at=None, updated_at=now,
                last_failure=failure or self.last_failure,
            )
        in_window = self.window_started_at is not None and now - self.window_started_at <= policy.window
        count = self.consecutive_failures + 1 if in_window else 1
        started = self.window_started_at if in_window else now
        if count >= policy.failure_threshold:
            return replace(
                self, state=BreakerState.OPEN, consecutive_failures=count, window_started_at=started,
                opened_at=now, updated_at=now, last_failure=failure or self.last_failure,
            )
        return replace(
            self, consecutive_failures=count, window_started_at=started, updated_at=now,
            last_failure=failure or self.last_failure,
        )
