"""TCS's host-to-host ISO 8583 dialect on the wire: framing, the field spec, and the F128 MAC.

A frame is a 4-digit ASCII length followed by an ASCII MTI, hex-ASCII bitmaps and the fields of
`SPEC` (a deep copy of pyiso8583's `default_ascii`, never the shared module dict). The MAC input
is everything after the length prefix up to, not including, F128's 16 hex characters
(docs/banks/tcs.md §3).
"""

from __future__ import annotations

import copy
import hmac
from typing import Any

import iso8583
from iso8583.specs import default_ascii

from banksim.tcs.crypto import x919_mac

LENGTH_DIGITS = 4
MAC_HEX_CHARS = 16
MAX_FRAME_BYTES = 9999

Message = dict[str, str]

SPEC: dict[str, Any] = copy.deepcopy(default_ascii)
# F48 carries the settlement totals, F54 the balance and F60 the type + batch number: all ASCII
# LLLVAR as default_ascii already has them; the max lengths below are TCS's own.
SPEC["48"] = dict(SPEC["48"], max_len=36)
SPEC["54"] = dict(SPEC["54"], max_len=20)
SPEC["60"] = dict(SPEC["60"], max_len=8)


class FrameError(ValueError):
    """The bytes are not a TCS message (bad length, undecodable fields)."""


def decode(body: bytes) -> Message:
    """Decode one message (without its length prefix); raises `FrameError`."""
    try:
        decoded, _ = iso8583.decode(body, SPEC)
    except iso8583.DecodeError as error:
        raise FrameError(str(error)) from error
    return {key: value for key, value in decoded.items() if isinstance(value, str)}


def encode(message: Message, zak: bytes | None) -> bytes:
    """Encode a message (MACed under `zak` when given), without the length prefix."""
    fields = {key: value for key, value in message.items() if key not in ("p", "1", "128")}
    if zak is None:
        raw, _ = iso8583.encode(fields, SPEC)
        return bytes(raw)
    fields["128"] = "0" * MAC_HEX_CHARS
    raw, _ = iso8583.encode(fields, SPEC)
    mab = bytes(raw[:-MAC_HEX_CHARS])
    return mab + x919_mac(zak, mab).hex().upper().encode("ascii")


def mac_is_valid(body: bytes, message: Message, zak: bytes) -> bool:
    """Whether F128 is present, last in the message, and the X9.19 MAC of the bytes before it."""
    received = message.get("128")
    if received is None or len(received) != MAC_HEX_CHARS or not body.endswith(received.encode("ascii")):
        return False
    expected = x919_mac(zak, body[:-MAC_HEX_CHARS]).hex().upper()
    return hmac.compare_digest(expected, received.upper())


def frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError("a TCS message is at most 9999 bytes")
    return f"{len(body):0{LENGTH_DIGITS}d}".encode("ascii") + body


def parse_length(prefix: bytes) -> int:
    text = prefix.decode("ascii", errors="replace")
    if len(text) != LENGTH_DIGITS or not text.isdigit() or int(text) == 0:
        raise FrameError(f"bad length prefix {prefix!r}")
    return int(text)
