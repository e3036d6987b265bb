"""What every simulated bank is made of, and the contract a bank package fulfils.

`BankContext` bundles one institution's machinery (books, clock, faults, SMS, notifier, partner
register, and the world's clearing). A bank package (`banksim.hbb`, `banksim.jhb`, …) exposes
`create_bank(context) -> Institution`; the world builds the context, seeds the books and serves
the institution's ASGI app on the bank's port. A bank without a package yet still runs its
books and the `/_sim` endpoints, so other banks can clear money to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from starlette.types import ASGIApp

from banksim.core.books import Books
from banksim.core.clearing import Clearing
from banksim.core.clock import SimClock
from banksim.core.faults import Faults
from banksim.core.notifier import Acknowledges, Notifier, RetryPolicy
from banksim.core.partners import Partners
from banksim.core.sms import Sms


@dataclass(frozen=True, slots=True)
class SimConfig:
    """World-wide knobs, read from the environment by `from_env`."""

    data_dir: Path
    # Multiplies every notification retry delay (BANKSIM_NOTIFY_SCALE, e.g. 0.001 in tests).
    notify_scale: float = 1.0
    # How long magic amounts 96/97 hold a request before giving up (BANKSIM_HANG_S).
    hang_s: float = 3600.0
    # Per-attempt timeout of a notification POST (BANKSIM_NOTIFY_TIMEOUT_S).
    notify_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, data_dir: Path) -> SimConfig:
        return cls(
            data_dir=data_dir,
            notify_scale=float(os.environ.get("BANKSIM_NOTIFY_SCALE", "1")),
            hang_s=float(os.environ.get("BANKSIM_HANG_S", "3600")),
            notify_timeout_s=float(os.environ.get("BANKSIM_NOTIFY_TIMEOUT_S", "10")),
        )

    @property
    def banks_dir(self) -> Path:
        return self.data_dir / "banks"


@dataclass(frozen=True, slots=True)
class BankProfile:
    code: str
    name_zh: str
    name_en: str
    port_offset: int
    reserve_acc_no: str
    # Delays between notification attempts before scaling (the first attempt is immediate).
    notify_delays_s: tuple[float, ...] = field(default=(15.0, 15.0, 30.0, 180.0, 1800.0))


PROFILES: dict[str, BankProfile] = {
    "HBB": BankProfile("HBB", "华北银行", "Huabei Bank", 0, "6217990000000000998", (60.0, 120.0, 240.0, 480.0, 960.0)),
    "JHB": BankProfile("JHB", "津海银行", "Jinhai Bank", 1, "6227990000000000997"),
    "BCB": BankProfile("BCB", "滨海商业银行", "Binhai Commercial Bank", 2, "6230990000000000991"),
}


def http_200(status_code: int, body: bytes) -> bool:
    """The default acknowledgement rule: any HTTP 200."""
    return status_code == 200


class BankContext:
    """One institution's machinery; built by the world, handed to the bank package."""

    def __init__(self, profile: BankProfile, config: SimConfig, clock: SimClock, clearing: Clearing) -> None:
        self.profile = profile
        self.config = config
        self.clock = clock
        self.directory = config.banks_dir / profile.code.lower()
        self.books = Books(self.directory / "books.sqlite")
        self.faults = Faults()
        self.sms = Sms(self.books, clock, profile.name_zh)
        self.partners = Partners(self.books, clock)
        self.clearing = clearing
        self.notifier = Notifier(
            self.books,
            clock,
            self.faults,
            RetryPolicy(profile.notify_delays_s, config.notify_scale),
            http_200,
            timeout_s=config.notify_timeout_s,
        )

    @property
    def code(self) -> str:
        return self.profile.code

    def use_acknowledgement(self, acknowledges: Acknowledges) -> None:
        """Set the bank's rule for what counts as a delivered notification."""
        self.notifier.acknowledges = acknowledges


class Institution(Protocol):
    """A running bank as the world sees it."""

    @property
    def context(self) -> BankContext: ...

    def asgi_app(self) -> ASGIApp: ...

    async def start(self) -> None:
        """Start background work (the notifier at least); called inside the serving loop."""

    async def stop(self) -> None: ...


class BankFactory(Protocol):
    def __call__(self, context: BankContext) -> Institution: ...
