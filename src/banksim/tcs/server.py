"""TCS on the network: the ISO 8583 TCP listener and the small HTTP admin app beside it.

Each frame read from a connection is handled in its own task (off the event loop, because PIN
checks hash with scrypt), so a withheld answer never blocks the connection and answers may leave
out of order. The admin app (`/_sim/*`) onboards acquirers, sets faults, shows state and serves
the POS clearing file (docs/banks/tcs.md §7–§9).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from banksim.core.cards import mask
from banksim.core.dayend import day_is_over
from banksim.core.seed import RESERVE_ACCOUNTS
from banksim.tcs.crypto import check_value, new_double_length_key
from banksim.tcs.store import Acquirer, SwitchStore, Txn
from banksim.tcs.switch import SETTLEMENT_BANK, Switch
from banksim.tcs.wire import LENGTH_DIGITS, FrameError, frame, parse_length

log = logging.getLogger("banksim.tcs")
ACQUIRER_ID = re.compile(r"^\d{8,11}$")


class TcsServer:
    """The running switch: TCP listener, admin app, and the endpoint file the platform reads."""

    def __init__(self, switch: Switch, directory: Path) -> None:
        self.switch = switch
        self.directory = directory
        self.iso_host = ""
        self.iso_port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_connection, host, port)
        self.iso_host, self.iso_port = host, int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)

    def write_endpoint_file(self, admin_url: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        endpoint = {"iso_host": self.iso_host, "iso_port": self.iso_port, "admin_url": admin_url}
        (self.directory / "endpoint.json").write_text(json.dumps(endpoint), encoding="utf-8")

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        write_lock = asyncio.Lock()
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                body = await _read_frame(reader)
                if body is None:
                    break
                handler = asyncio.create_task(self._answer(body, writer, write_lock))
                pending.add(handler)
                handler.add_done_callback(pending.discard)
        except (FrameError, ConnectionError) as error:
            log.info("closing a TCS connection: %s", error)
        finally:
            for handler in pending:
                handler.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _answer(self, body: bytes, writer: asyncio.StreamWriter, write_lock: asyncio.Lock) -> None:
        answer = await asyncio.to_thread(self.switch.handle, body)
        latency_ms = self.switch.faults.latency_ms
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if answer is None:
            return
        async with write_lock:
            with contextlib.suppress(ConnectionError):
                writer.write(frame(answer))
                await writer.drain()

    # The admin app

    def admin_app(self) -> ASGIApp:
        return Starlette(
            routes=[
                Route("/_sim/health", self._health),
                Route("/_sim/state", self._state),
                Route("/_sim/faults", self._faults, methods=["GET", "POST"]),
                Route("/_sim/partners", self._partners, methods=["POST"]),
                Route("/_sim/clearing-file", self._clearing_file),
            ]
        )

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse({"bank": "TCS", "ok": True, "iso_port": self.iso_port})

    async def _state(self, request: Request) -> JSONResponse:
        store = self.switch.store
        return JSONResponse(
            {
                "bank": "TCS",
                "acquirers": [{"acquirer_id": a.acquirer_id, "name": a.name} for a in store.acquirers()],
                "transactions": [_txn_view(t) for t in store.transactions()],
                "faults": self.switch.faults.as_dict(),
            }
        )

    async def _faults(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                self.switch.faults.update(await _json_object(request))
            except ValueError as error:
                return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(self.switch.faults.as_dict())

    async def _partners(self, request: Request) -> JSONResponse:
        try:
            data = await _json_object(request)
            acquirer = onboard(self.switch, data)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(self._pack(acquirer))

    def _pack(self, acquirer: Acquirer) -> dict[str, Any]:
        return {
            "switch": "TCS",
            "acquirer_id": acquirer.acquirer_id,
            "zpk": acquirer.zpk.hex().upper(),
            "zpk_kcv": check_value(acquirer.zpk),
            "zak": acquirer.zak.hex().upper(),
            "zak_kcv": check_value(acquirer.zak),
            "iso_host": self.iso_host,
            "iso_port": self.iso_port,
            "settlement_bank": SETTLEMENT_BANK,
            "settlement_acc_no": RESERVE_ACCOUNTS[SETTLEMENT_BANK],
        }

    async def _clearing_file(self, request: Request) -> PlainTextResponse:
        try:
            wanted = date.fromisoformat(request.query_params.get("date", ""))
        except ValueError:
            return PlainTextResponse("date=YYYY-MM-DD is required\n", status_code=400)
        acquirer_id = request.query_params.get("acquirer_id")
        # Like every bank's statement, the clearing file of a day exists only once that day is over
        # in the switch's clock (docs/clearing.md); earlier it would still change.
        if not day_is_over(self.switch.clock, wanted):
            return PlainTextResponse(f"not ready: {wanted.isoformat()} is not over yet\n", status_code=409)
        return PlainTextResponse(clearing_file(self.switch.store, wanted, acquirer_id))


def onboard(switch: Switch, data: dict[str, Any]) -> Acquirer:
    """Register an acquirer (or return it, or rotate its keys); raises ValueError on bad input."""
    store = switch.store
    acquirer_id = data.get("acquirer_id")
    if acquirer_id is None:
        acquirer_id = f"4899{store.next_sequence('acquirer'):04d}"
    if not isinstance(acquirer_id, str) or not ACQUIRER_ID.match(acquirer_id):
        raise ValueError("acquirer_id must be 8 to 11 digits")
    name = data.get("name") or "acquirer"
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    existing = store.acquirer(acquirer_id)
    if existing is not None and not data.get("rotate"):
        return existing
    fresh = Acquirer(acquirer_id, name, new_double_length_key(), new_double_length_key())
    store.save_acquirer(fresh, switch.clock.now().isoformat())
    return fresh


def clearing_file(store: SwitchStore, clear_date: date, acquirer_id: str | None) -> str:
    """The POS clearing file: one line per approved, non-reversed purchase or void (§9)."""
    txns = store.cleared(clear_date, acquirer_id)
    lines = [_clearing_line(t, store.get(t.orig_txn_id).rrn if t.orig_txn_id else "0" * 12) for t in txns]
    debit_minor = sum(t.amount_minor for t in txns if t.kind == "purchase")
    credit_minor = sum(t.amount_minor for t in txns if t.kind == "void")
    lines.append(f"TOTAL {len(txns):06d} {debit_minor:014d} {credit_minor:014d}")
    return "\n".join(lines) + "\n"


def _clearing_line(txn: Txn, orig_rrn: str) -> str:
    is_void = txn.kind == "void"
    return " ".join(
        [
            "P23" if is_void else "P22",
            txn.clear_date.strftime("%Y%m%d"),
            txn.acquirer_id.rjust(11, "0"),
            txn.terminal_id.ljust(8),
            txn.merchant_id.ljust(15),
            txn.stan,
            txn.rrn,
            txn.auth_code.ljust(6),
            mask(txn.pan).ljust(19),
            f"{txn.amount_minor:012d}",
            "C" if is_void else "D",
            txn.issuer.ljust(3),
            orig_rrn,
            txn.f7.rjust(10, "0"),
            txn.batch_no.rjust(6, "0"),
        ]
    )


def _txn_view(txn: Txn) -> dict[str, Any]:
    return {
        "txn_id": txn.txn_id,
        "acquirer_id": txn.acquirer_id,
        "terminal_id": txn.terminal_id,
        "merchant_id": txn.merchant_id,
        "business_date": txn.business_date.isoformat(),
        "stan": txn.stan,
        "kind": txn.kind,
        "status": txn.status,
        "response_code": txn.response_code,
        "pan": mask(txn.pan),
        "issuer": txn.issuer,
        "amount_minor": txn.amount_minor,
        "rrn": txn.rrn,
        "batch_no": txn.batch_no,
        "clear_date": txn.clear_date.isoformat(),
    }


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        prefix = await reader.readexactly(LENGTH_DIGITS)
    except asyncio.IncompleteReadError:
        return None
    length = parse_length(prefix)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


async def _json_object(request: Request) -> dict[str, Any]:
    data = json.loads(await request.body() or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
