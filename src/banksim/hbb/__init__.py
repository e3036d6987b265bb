"""HBB 华北银行 Huabei Bank: the ACP 5.1.0 dialect (signed key=value forms), BANKS.md "HBB".

`create_bank` is the entry point the world calls. This package serves online banking (consume
via `frontTransReq.do`), quick pay (77/79/78/74 and 01 with bizType 000301), query, refund, payout
(12, `payout.py`) and the daily statement (76 on `fileTransfer.do`, `statement.py`).
"""

from __future__ import annotations

from starlette.types import ASGIApp

from banksim.core.bank import BankContext
from banksim.hbb.app import build_app
from banksim.hbb.gateway import Gateway
from banksim.hbb.orders import SCHEMA
from banksim.hbb.pki import load_or_create
from banksim.hbb.tokens import SCHEMA as TOKENS_SCHEMA


def acknowledges(status_code: int, body: bytes) -> bool:
    """HBB counts a notification delivered on HTTP 200 with the body `ok` (BANKS.md)."""
    return status_code == 200 and body.strip().lower() == b"ok"


class HbbBank:
    def __init__(self, context: BankContext) -> None:
        self._context = context
        context.books.ensure_schema(SCHEMA)
        context.books.ensure_schema(TOKENS_SCHEMA)
        context.use_acknowledgement(acknowledges)
        self.gateway = Gateway(context, load_or_create(context.directory / "pki"))

    @property
    def context(self) -> BankContext:
        return self._context

    def asgi_app(self) -> ASGIApp:
        return build_app(self.gateway)

    async def start(self) -> None:
        self._context.notifier.start()

    async def stop(self) -> None:
        await self._context.notifier.stop()


def create_bank(context: BankContext) -> HbbBank:
    return HbbBank(context)
