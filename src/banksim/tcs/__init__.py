"""TCS 津卡联 Tianjin Card Switch: ISO 8583 host-to-host POS switching between the platform and
the simulated issuers (docs/banks/tcs.md). `create_switch` builds it from the world's banks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from banksim.core.books import Books
from banksim.core.clearing import Clearing
from banksim.core.clock import SimClock
from banksim.tcs.server import TcsServer
from banksim.tcs.store import SwitchStore
from banksim.tcs.switch import Switch

__all__ = ["TcsServer", "create_switch"]


def create_switch(directory: Path, banks: Mapping[str, Books], clearing: Clearing, clock: SimClock) -> TcsServer:
    """TCS with its records in `directory/switch.sqlite`, routing to `banks` (code → books)."""
    store = SwitchStore(directory / "switch.sqlite")
    return TcsServer(Switch(store, banks, clearing, clock), directory)
