"""JHB 津海银行: the simulated bank that speaks a JSON envelope with 国密 (SM2/SM3/SM4).

Modelled on LianLian/Baofoo protocol pay (BANKS.md, JHB section; docs/banks/jhb.md). So far it
offers online banking (`ebank.pay` with JHB's own login and confirmation pages), quick pay
(`bind.*`, `unbind`, `pay`), direct-debit mandates (`mandate.*`), `pay.query`, `refund`,
`refund.query`, signed notifications and the daily statement (`bill.download`). The world calls
`create_bank`.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from banksim.core.bank import BankContext
from banksim.core.notifier import RetryPolicy
from banksim.jhb.agreements import SCHEMA as AGREEMENTS_SCHEMA
from banksim.jhb.agreements import Agreements
from banksim.jhb.app import JhbApp
from banksim.jhb.bill import Bills
from banksim.jhb.gateway import Gateway
from banksim.jhb.keyring import Keyring
from banksim.jhb.mandates import SCHEMA as MANDATES_SCHEMA
from banksim.jhb.mandates import Mandates
from banksim.jhb.notices import RETRY_DELAYS_S, Notices, acknowledges
from banksim.jhb.quickpay import QuickPay
from banksim.jhb.service import JhbService
from banksim.jhb.store import SCHEMA, JhbStore


class JhbBank:
    """The running institution: JHB's services wired onto the world's context."""

    def __init__(self, context: BankContext) -> None:
        self._context = context
        _ensure_schema(context)
        context.use_acknowledgement(acknowledges)
        context.notifier.policy = RetryPolicy(RETRY_DELAYS_S, context.config.notify_scale)
        self.store = JhbStore(context.books)
        self.keyring = Keyring(context, self.store)
        self.notices = Notices(context, self.keyring)
        self.service = JhbService(context, self.store, self.notices)
        self.quick_pay = QuickPay(context, self.store, Agreements(context.books), self.service)
        self.mandates = Mandates(context, self.store, self.service, self.notices)
        self.bills = Bills(context, self.store)
        self.gateway = Gateway(
            context, self.store, self.keyring, self.service, self.quick_pay, self.mandates, self.bills
        )
        self._app = JhbApp(context, self.keyring, self.gateway, self.service, self.mandates).build()

    @property
    def context(self) -> BankContext:
        return self._context

    def asgi_app(self) -> ASGIApp:
        return self._app

    async def start(self) -> None:
        self._context.notifier.start()

    async def stop(self) -> None:
        await self._context.notifier.stop()


def create_bank(context: BankContext) -> JhbBank:
    return JhbBank(context)


def _ensure_schema(context: BankContext) -> None:
    # The world opened the books with the core schema only; JHB adds its own tables idempotently.
    with context.books.tx() as conn:
        for statement in (SCHEMA + AGREEMENTS_SCHEMA + MANDATES_SCHEMA).split(";"):
            if statement.strip():
                conn.execute(statement)
