"""Per-bank fault switches set at `POST /_sim/faults` (latency, outage, refusing new orders,
notification chaos).

Faults live in memory: a restarted bank comes back healthy. The ASGI middleware that applies
latency and outage to the bank's protocol endpoints sits in `simapi.py`; `refuse_new_orders` is
applied by each dialect where it accepts a new payment, because only the bank can answer it in its
own signed words.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from banksim.core.magic import Magic


class FaultError(ValueError):
    """A fault setting that is out of range or unknown."""


@dataclass(slots=True)
class FaultSettings:
    latency_ms: int = 0
    outage: bool = False
    notify_drop_rate: float = 0.0
    notify_duplicate_rate: float = 0.0
    # Every new payment (online banking or quick pay, any amount) is answered as magic 91 is: the
    # bank's own signed "unavailable, not processed". Queries, refunds, binding and notifications
    # keep working, so a platform can fail over and still settle what it already sent.
    refuse_new_orders: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Faults:
    """The bank's current fault settings plus the random source that realises the rates."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.settings = FaultSettings()
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.settings = FaultSettings()

    def update(self, changes: Mapping[str, object]) -> FaultSettings:
        """Apply a partial update; `{"reset": true}` first restores the defaults."""
        if changes.get("reset"):
            self.reset()
        fresh = FaultSettings(**self.settings.as_dict())  # type: ignore[arg-type]
        for key, value in changes.items():
            if key == "reset":
                continue
            _apply(fresh, key, value)
        self.settings = fresh
        return fresh

    def refuses_new_order(self, magic: Magic) -> bool:
        """Whether a new payment of this magic must be refused before the bank records anything."""
        return magic is Magic.REFUSED or self.settings.refuse_new_orders

    def drop_notification(self) -> bool:
        return self._rng.random() < self.settings.notify_drop_rate

    def duplicate_notification(self) -> bool:
        return self._rng.random() < self.settings.notify_duplicate_rate


def _apply(settings: FaultSettings, key: str, value: object) -> None:
    if key == "latency_ms":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FaultError("latency_ms must be a non-negative integer")
        settings.latency_ms = value
    elif key in ("outage", "refuse_new_orders"):
        if not isinstance(value, bool):
            raise FaultError(f"{key} must be true or false")
        setattr(settings, key, value)
    elif key in ("notify_drop_rate", "notify_duplicate_rate"):
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise FaultError(f"{key} must be a number between 0 and 1")
        setattr(settings, key, float(value))
    else:
        raise FaultError(f"unknown fault {key!r}")
