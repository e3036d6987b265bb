"""The clock port: services ask for the time instead of reading it, so tests can set it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class IdGenerator(Protocol):
    def new(self, prefix: str) -> str:
        """A new, unique, roughly time-ordered id such as ``pay_01JC…``."""
        ...
