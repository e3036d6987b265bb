"""The simulated banking world: every bank's books, the shared clock and clearing, and the servers.

`World` opens (and seeds) the books of every bank in `PROFILES`, the world clock and the
interbank clearing, then builds each institution from its package (`banksim.hbb`, …) when that
package exists. `serve` runs them all on consecutive ports: HBB on the base port, JHB on +1,
BCB on +2, and TCS, the card switch, its ISO 8583 TCP listener on +3 and its HTTP admin on +5
(announced in `<data-dir>/banks/tcs/endpoint.json`, not in the banks' URL map; docs/banks/tcs.md).
Base +4 is left free: `tianpay up` starts the banks at its own port +1, so base +4 is the
platform's +5, where DESIGN.md §2 puts `tianpay pos-front`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from types import ModuleType

from banksim.core.bank import PROFILES, BankContext, BankFactory, Institution, SimConfig
from banksim.core.books import Books
from banksim.core.clearing import Clearing
from banksim.core.clock import SimClock
from banksim.core.seed import seed_bank
from banksim.core.server import Listener, serve_all
from banksim.core.simapi import SimOnlyBank
from banksim.tcs import TcsServer, create_switch

log = logging.getLogger("banksim.world")

# The package that implements each bank's protocol dialect. A bank whose package is missing (or
# does not yet expose `create_bank`) still runs as a books-and-/_sim-only institution.
BANK_PACKAGES: dict[str, str] = {"HBB": "banksim.hbb", "JHB": "banksim.jhb", "BCB": "banksim.bcb"}
TCS_ISO_PORT_OFFSET = 3
# Not +4: that is platform +5, pos-front's port under `tianpay up` (DESIGN.md §2).
TCS_ADMIN_PORT_OFFSET = 5


class World:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        config.banks_dir.mkdir(parents=True, exist_ok=True)
        self.clock = SimClock(config.banks_dir / "clock.json")
        self.clearing = Clearing(config.banks_dir / "clearing.sqlite", {}, self.clock)
        self.contexts: dict[str, BankContext] = {}
        for code, profile in PROFILES.items():
            context = BankContext(profile, config, self.clock, self.clearing)
            seed_bank(context.books, code, at=self.clock.now())
            self.clearing.add_bank(code, context.books)
            self.contexts[code] = context
        self.clearing.resume()
        self.banks: dict[str, Institution] = {code: _institution(context) for code, context in self.contexts.items()}
        self.tcs: TcsServer = create_switch(
            config.banks_dir / "tcs", {code: c.books for code, c in self.contexts.items()}, self.clearing, self.clock
        )

    def books(self, code: str) -> Books:
        return self.contexts[code].books

    def close(self) -> None:
        for context in self.contexts.values():
            context.books.close()
        self.tcs.switch.store.close()
        self.clearing.close()

    async def serve(
        self,
        host: str,
        base_port: int,
        on_ready: Callable[[dict[str, str]], Awaitable[None]],
        stop: asyncio.Event | None = None,
    ) -> None:
        """Serve every bank until `stop` is set or the process gets SIGINT/SIGTERM.

        A `base_port` of 0 gives every bank an ephemeral port (tests use this).
        """
        stop = stop or asyncio.Event()
        listeners = [
            Listener(code, bank.asgi_app(), base_port + bank.context.profile.port_offset if base_port else 0)
            for code, bank in self.banks.items()
        ]
        listeners.append(Listener("TCS", self.tcs.admin_app(), base_port + TCS_ADMIN_PORT_OFFSET if base_port else 0))
        await self.tcs.start(host, base_port + TCS_ISO_PORT_OFFSET if base_port else 0)

        async def announce(urls: dict[str, str]) -> None:
            # TCS is announced in its endpoint file: the URL map's readers expect HTTP banks only.
            self.tcs.write_endpoint_file(urls.pop("TCS"))
            await on_ready(urls)

        for bank in self.banks.values():
            await bank.start()
        try:
            await serve_all(listeners, host, announce, stop)
        finally:
            await self.tcs.stop()
            for bank in self.banks.values():
                await bank.stop()


def _institution(context: BankContext) -> Institution:
    factory = _factory(context.code)
    if factory is None:
        return SimOnlyBank(context)
    return factory(context)


def _factory(code: str) -> BankFactory | None:
    module = _import_optional(BANK_PACKAGES[code])
    factory = getattr(module, "create_bank", None) if module is not None else None
    if factory is None:
        log.info("%s has no protocol package yet; serving its books and /_sim only", code)
    return factory


def _import_optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            log.exception("bank package %s failed to import", name)
        return None
    except Exception:
        # A broken bank package must not take the other banks down; the error is logged loudly
        # and the bank runs as books and /_sim only.
        log.exception("bank package %s failed to import", name)
        return None
