"""The switch-side (host-to-host) ISO 8583 dialect of TCS (BANKS.md TCS "Switch side").

A frame is a 4-byte ASCII decimal length, then an ASCII MTI, hex-ASCII primary and secondary
bitmaps and ASCII fields (pyiso8583's ``default_ascii``, deep-copied); field 128 is the ANSI X9.19
MAC under the zone MAC key (ZAK) over everything before it, sent as 16 hex characters.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import iso8583
import iso8583.specs

from tianpay.channels.tcs.signing import macs_match, x919_mac

LENGTH_BYTES: Final = 4
MAC_HEX_CHARS: Final = 16
SPEC: Final[dict[str, dict[str, Any]]] = copy.deepcopy(iso8583.specs.default_ascii)


class WireError(Exception):
    """A switch message that does not decode, or whose MAC does not verify."""


def encode(fields: dict[str, str], zak: bytes) -> bytes:
    """A whole frame with F128 = X9.19(ZAK) over the message before F128."""
    fields = {k: v for k, v in fields.items() if k not in ("p", "1", "128")}
    fields["128"] = "0" * MAC_HEX_CHARS
    body, _ = iso8583.encode(fields, SPEC)
    mab = bytes(body[:-MAC_HEX_CHARS])
    message = mab + x919_mac(zak, mab).hex().upper().encode("ascii")
    return f"{len(message):04d}".encode("ascii") + message


def decode(message: bytes, zak: bytes) -> dict[str, str]:
    """Decodes a message (after the length) and verifies its MAC."""
    try:
        fields, _ = iso8583.decode(message, SPEC)
    except iso8583.DecodeError as exc:
        raise WireError(f"undecodable switch message: {exc.args[0] if exc.args else ''}") from None
    mac = fields.get("128")
    if mac is None:
        raise WireError("switch message without a MAC")
    expected = x919_mac(zak, message[:-MAC_HEX_CHARS]).hex().upper().encode("ascii")
    if not macs_match(expected, mac.upper().encode("ascii")):
        raise WireError("switch MAC does not verify")
    return dict(fields)
