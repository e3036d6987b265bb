"""The terminal-side ISO 8583 dialect (BANKS.md TCS "Terminal side"; research/protocols.md §1.1–1.8).

A frame is a 2-byte big-endian length, a 5-byte TPDU (``60 0003 0000``, source and destination
swapped in replies), a 6-byte header, then the message: BCD MTI, binary bitmap, BCD numerics,
ASCII text fields, and field 64 = the CUP "ECB" MAC under the terminal's MAK over everything
from the MTI up to field 64. pyiso8583 packs the message; framing and the MAC are done here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

import iso8583
import iso8583.specs

from tianpay.channels.tcs.signing import cup_ecb_mac

TPDU_BYTES: Final = 5
HEADER_BYTES: Final = 6
MAC_BYTES: Final = 8
DEFAULT_TPDU: Final = bytes.fromhex("6000030000")
DEFAULT_HEADER: Final = bytes.fromhex("603210320072")
MAX_FRAME_BYTES: Final = 4096


def _bcd(max_len: int, *, left_pad: bool = True) -> dict[str, Any]:
    pad = {"left_pad": "0"} if left_pad else {"right_pad": "0"}
    return {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": max_len, "len_count": "nibbles", **pad}


def _bcd_var(len_type: int, max_len: int) -> dict[str, Any]:
    return {
        "data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_len,
        "len_count": "nibbles", "right_pad": "0",
    }


def _ascii(max_len: int, len_type: int = 0) -> dict[str, Any]:
    len_enc = "bcd" if len_type else "ascii"
    return {"data_enc": "ascii", "len_enc": len_enc, "len_type": len_type, "max_len": max_len}


def _build_spec() -> dict[str, dict[str, Any]]:
    # Deep-copied: pyiso8583's how-to mutates the module-level spec, which every user shares
    # (research/protocols.md §1.8 pitfall 1).
    spec: dict[str, dict[str, Any]] = copy.deepcopy(iso8583.specs.default)
    spec["t"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": "MTI BCD"}
    spec["2"] = _bcd_var(1, 19)
    spec["3"] = _bcd(6)
    spec["4"] = _bcd(12)
    spec["11"] = _bcd(6)
    spec["12"] = _bcd(6)
    spec["13"] = _bcd(4)
    spec["14"] = _bcd(4)
    # F22 is left-aligned in CUP documents (research/protocols.md §1.3).
    spec["22"] = _bcd(3, left_pad=False)
    spec["25"] = _bcd(2)
    spec["26"] = _bcd(2)
    spec["32"] = _bcd_var(1, 11)
    spec["37"] = _ascii(12)
    spec["38"] = _ascii(6)
    spec["39"] = _ascii(2)
    spec["41"] = _ascii(8)
    spec["42"] = _ascii(15)
    spec["44"] = _ascii(25, len_type=1)
    spec["48"] = _bcd_var(2, 322)
    spec["49"] = _ascii(3)
    spec["52"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8}
    spec["53"] = _bcd(16)
    spec["60"] = _bcd_var(2, 32)
    spec["61"] = _bcd_var(2, 29)
    spec["62"] = {"data_enc": "b", "len_enc": "bcd", "len_type": 2, "max_len": 999}
    spec["63"] = _ascii(63, len_type=2)
    spec["64"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8}
    return spec


SPEC: Final = _build_spec()


class FrameError(Exception):
    """A frame that is not a well-formed terminal message (answered with 30 when possible)."""


@dataclass(frozen=True, slots=True)
class TerminalFrame:
    """One decoded terminal message with its envelope; ``fields`` are pyiso8583's strings."""

    tpdu: bytes
    header: bytes
    fields: dict[str, str]
    mab: bytes
    mac: bytes | None

    @property
    def mti(self) -> str:
        return self.fields["t"]


def decode(payload: bytes) -> TerminalFrame:
    """Decodes a frame's payload (after the 2-byte length)."""
    if len(payload) < TPDU_BYTES + HEADER_BYTES + 2 + 8:
        raise FrameError("frame too short")
    tpdu = payload[:TPDU_BYTES]
    header = payload[TPDU_BYTES : TPDU_BYTES + HEADER_BYTES]
    body = payload[TPDU_BYTES + HEADER_BYTES :]
    try:
        fields, _ = iso8583.decode(bytes(body), SPEC)
    except iso8583.DecodeError as exc:
        raise FrameError(f"undecodable message: {exc.args[0] if exc.args else ''}") from None
    has_mac = "64" in fields
    mab = body[:-MAC_BYTES] if has_mac else body
    mac = body[-MAC_BYTES:] if has_mac else None
    return TerminalFrame(tpdu, header, fields, bytes(mab), mac)


def encode(
    fields: dict[str, str], *, mak: bytes | None, tpdu: bytes = DEFAULT_TPDU, header: bytes = DEFAULT_HEADER
) -> bytes:
    """Encodes a whole frame (length included); with ``mak`` field 64 carries the CUP MAC."""
    fields = dict(fields)
    fields.pop("64", None)
    fields.pop("p", None)
    if mak is not None:
        # Encode with a placeholder F64 so the bitmap announces it, then MAC everything before it.
        fields["64"] = "00" * MAC_BYTES
        body, _ = iso8583.encode(fields, SPEC)
        mab = bytes(body[:-MAC_BYTES])
        body = bytearray(mab + cup_ecb_mac(mak, mab))
    else:
        body, _ = iso8583.encode(fields, SPEC)
    payload = tpdu + header + bytes(body)
    return len(payload).to_bytes(2, "big") + payload


def reply_tpdu(tpdu: bytes) -> bytes:
    """The reply's TPDU: same ID, destination and source addresses swapped."""
    return tpdu[:1] + tpdu[3:5] + tpdu[1:3]
