"""Id generation: ULID-style ids (48-bit milliseconds + 80 random bits, Crockford base32).

Time-ordered ids keep B-tree inserts local and make ids sortable by creation, which helps cursor
pagination; the random part comes from ``secrets`` so ids cannot be guessed.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


class UlidGenerator:
    def new(self, prefix: str) -> str:
        return f"{prefix}_{ulid()}"
