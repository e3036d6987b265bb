"""A fresh copy of the seeded world whose HBB gateway and TCS switch are served on loopback in a thread.

The day-end tests need both the real HTTP faces (HBB's fileTransfer.do and backTransReq.do, TCS's ISO
listener and admin app) and the world in hand: its clock to end a day, its books to compare a
statement with. Signing and encryption on the test side follow BANKS.md (tests/banksim/acp_kit.py).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.types import ASGIApp

from banksim.core.bank import SimConfig
from banksim.tcs.server import onboard
from banksim.world import World
from tests.banksim.acp_kit import Platform, beijing_now, new_order_id, parse_raw_answer
from tests.banksim.tcs.conftest import Tcs

HANG_S = 1.5
DAY_S = 86_400.0


@dataclass
class Live:
    world: World
    hbb_url: str
    tcs_admin_url: str
    tcs: Tcs
    platform: Platform

    def post_back(
        self, fields: dict[str, str], path: str = "backTransReq.do", timeout_s: float = 10.0
    ) -> dict[str, str]:
        response = httpx.post(f"{self.hbb_url}/gateway/api/{path}", data=fields, timeout=timeout_s)
        response.raise_for_status()
        return parse_raw_answer(response.text)

    def encrypt(self, acc_no: str) -> str:
        cert = x509.load_pem_x509_certificate(self.platform.pack["encrypt_cert_pem"].encode())
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return base64.b64encode(key.encrypt(acc_no.encode(), padding.PKCS1v15())).decode()

    def payout_fields(self, acc_no: str, name: str, amount_minor: int, back_url: str = "") -> dict[str, str]:
        info = base64.b64encode(("{customerNm=" + name + "}").encode()).decode()
        fields = self.platform.base(
            "12",
            txnSubType="00",
            bizType="000401",
            orderId=new_order_id("P"),
            txnTime=beijing_now(),
            txnAmt=str(amount_minor),
            accNo=self.encrypt(acc_no),
            encryptCertId=self.platform.pack["encrypt_cert_id"],
            customerInfo=info,
        )
        if back_url:
            fields["backUrl"] = back_url
        return self.platform.sign(fields)

    def statement(self, settle_date: str) -> dict[str, str]:
        fields = self.platform.base(
            "76", txnSubType="01", bizType="000000", txnTime=beijing_now(), settleDate=settle_date, fileType="00"
        )
        for unused in ("currencyCode", "channelType"):
            fields.pop(unused)
        return self.post_back(self.platform.sign(fields), "fileTransfer.do")

    def end_day(self) -> None:
        self.world.clock.advance(DAY_S)


def file_text(answer: dict[str, str]) -> str:
    return zlib.decompress(base64.b64decode(answer["fileContent"])).decode("ascii")


class _Servers:
    """uvicorn servers on an event loop of their own thread (uvicorn skips signals off the main thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running: list[tuple[uvicorn.Server, concurrent.futures.Future[None]]] = []

    def serve(self, app: ASGIApp) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        future = asyncio.run_coroutine_threadsafe(server.serve(), self.loop)
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        self.running.append((server, future))
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def stop(self) -> None:
        for server, _ in self.running:
            server.should_exit = True
        for _, future in self.running:
            future.result(timeout=HANG_S + 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def live_world(template: Path, target: Path) -> Iterator[Live]:
    shutil.copytree(template / "banks", target / "banks", dirs_exist_ok=True)
    world = World(SimConfig(data_dir=target, notify_scale=0.001, hang_s=HANG_S, notify_timeout_s=2.0))
    servers = _Servers()
    hbb = world.banks["HBB"]
    servers.run(hbb.start())
    hbb_url = servers.serve(hbb.asgi_app())
    tcs_admin_url = servers.serve(world.tcs.admin_app())
    servers.run(world.tcs.start("127.0.0.1", 0))
    acquirer = onboard(world.tcs.switch, {"acquirer_id": "48990001", "name": "天付支付"})
    tcs = Tcs(world, world.tcs.iso_port, acquirer.acquirer_id, acquirer.zpk, acquirer.zak)
    platform = Platform.create()
    platform.onboard(hbb_url)
    try:
        yield Live(world, hbb_url, tcs_admin_url, tcs, platform)
    finally:
        servers.run(world.tcs.stop())
        servers.run(hbb.stop())
        servers.stop()
        world.close()


def pos_reversal(tcs: Tcs, original: dict[str, str]) -> dict[str, str]:
    """A 0400 reversing `original` (as tests/banksim/tcs/test_tcs_switch.py builds it)."""
    f90 = "0200" + original["11"] + original["7"] + tcs.acquirer_id.rjust(11, "0") + "0" * 11
    fields = {k: original[k] for k in ("2", "3", "4", "11", "32", "41", "42", "49")}
    return {"t": "0400", "7": original["7"], **fields, "39": "98", "90": f90}

