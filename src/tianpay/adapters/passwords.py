"""argon2id for login and payment passwords (DESIGN.md §10), with a cost profile from Settings.

Production uses argon2-cffi's RFC 9106 low-memory profile; tests pass a cheap profile so thousands of
checks stay fast. A hash records its own parameters, so either profile verifies the other's hashes.
"""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2PasswordHasher:
    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65536, parallelism: int = 4) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism, type=Type.ID
        )

    def hash(self, secret: str) -> str:
        return self._argon2.hash(secret)

    def verify(self, hashed: str, secret: str) -> bool:
        try:
            return self._argon2.verify(hashed, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
