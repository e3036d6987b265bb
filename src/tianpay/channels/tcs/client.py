"""The TCS client: one TCP connection per exchange to the switch, with a hard answer timeout.

A timeout raises ``SwitchTimeout``: the caller must then reverse (BANKS.md TCS "No answer within
the timeout → the platform sends a reversal (0400) until it gets a 0410"), never treat it as a
decline.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from tianpay.channels.tcs import wire
from tianpay.channels.tcs.config import TcsConfig


class SwitchTimeout(Exception):
    """No answer from TCS in time (or the connection broke): the outcome is unknown."""


class TcsClient:
    def __init__(self, config: TcsConfig) -> None:
        self.config = config

    async def exchange(self, fields: dict[str, str]) -> dict[str, str]:
        """Sends one request (F32/F33 added) and returns the verified answer."""
        request = {**fields, "32": self.config.institution_id}
        frame = wire.encode(request, self.config.zak)
        try:
            return await asyncio.wait_for(self._round_trip(frame), timeout=self.config.timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise SwitchTimeout(f"no answer from TCS for STAN {fields.get('11')}: {type(exc).__name__}") from None

    async def _round_trip(self, frame: bytes) -> dict[str, str]:
        reader, writer = await asyncio.open_connection(self.config.host, self.config.port)
        try:
            writer.write(frame)
            await writer.drain()
            length = int((await reader.readexactly(wire.LENGTH_BYTES)).decode("ascii"))
            return wire.decode(await reader.readexactly(length), self.config.zak)
        finally:
            writer.close()


def transmission_time(now: datetime) -> str:
    """F7, MMDDhhmmss in Beijing time (docs/banks/tcs.md §2)."""
    return now.astimezone(BEIJING).strftime("%m%d%H%M%S")


BEIJING = timezone(timedelta(hours=8))
