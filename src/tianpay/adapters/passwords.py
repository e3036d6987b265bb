"""argon2id for login and payment passwords (DESIGN.md §10), with a cost profile from Settings.

Production uses argon2-cffi's RFC 9106 low-memory profile; tests pass a cheap profile so thousands of
checks stay fast. A hash records its own parameters, so either profile verifies the other's hashes.
Hashing and verifying run through process-wide slots, as many as the cores by default, so a burst of
password checks queues instead of running 40 64-MiB computations side by side.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class HashingSlots:
    """A counting semaphore for argon2id computations that also tells how many run and wait.

    The counts make the bound observable (tests, metrics) without timing anything.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("at least one hashing slot is needed")
        self.size = size
        self._condition = threading.Condition()
        self._in_use = 0
        self._waiting = 0
        self._peak_in_use = 0

    @property
    def in_use(self) -> int:
        with self._condition:
            return self._in_use

    @property
    def peak_in_use(self) -> int:
        """The most computations that ever ran at once through these slots."""
        with self._condition:
            return self._peak_in_use

    @property
    def waiting(self) -> int:
        with self._condition:
            return self._waiting

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._condition:
            self._waiting += 1
            try:
                self._condition.wait_for(lambda: self._in_use < self.size)
            finally:
                self._waiting -= 1
            self._in_use += 1
            self._peak_in_use = max(self._peak_in_use, self._in_use)
        try:
            yield
        finally:
            with self._condition:
                self._in_use -= 1
                self._condition.notify()


_shared_slots: Final[dict[int, HashingSlots]] = {}
_shared_slots_lock: Final = threading.Lock()


def shared_slots(size: int | None = None) -> HashingSlots:
    """The process's slots of ``size`` (default: the number of CPUs), one object per size.

    Every hasher built with the same bound shares one set of slots, so the container's hasher (member
    payment passwords, wallet and portal logins, operator logins) is bounded as a whole per process.
    """
    bound = size if size is not None else os.cpu_count() or 1
    with _shared_slots_lock:
        slots = _shared_slots.get(bound)
        if slots is None:
            slots = _shared_slots[bound] = HashingSlots(bound)
        return slots


class Argon2PasswordHasher:
    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost_kib: int = 65536,
        parallelism: int = 4,
        max_concurrent: int | None = None,
        slots: HashingSlots | None = None,
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism, type=Type.ID
        )
        self.slots = slots if slots is not None else shared_slots(max_concurrent)

    def hash(self, secret: str) -> str:
        with self.slots.held():
            return self._argon2.hash(secret)

    def verify(self, hashed: str, secret: str) -> bool:
        try:
            with self.slots.held():
                return self._argon2.verify(hashed, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
