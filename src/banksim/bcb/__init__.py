"""BCB 滨海商业银行 Binhai Commercial Bank: the AIPG dialect (GBK XML, Allinpay style), BANKS.md "BCB".

`create_bank` is the entry point the world calls. This package serves mandates (a BCB extension,
docs/banks/bcb.md), direct debit `100002`, batch payout `100001` (with the `300001` bounce notice),
query `200004` and the statement `200005`.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.types import ASGIApp

from banksim.bcb.app import build_app
from banksim.bcb.service import BcbService
from banksim.core.bank import BankContext


def load_or_create_key(directory: Path) -> rsa.RSAPrivateKey:
    """BCB's own RSA signing key, created at first start and kept in the bank's directory."""
    path = directory / "signing_key.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return key


class BcbBank:
    def __init__(self, context: BankContext) -> None:
        self._context = context
        self.key = load_or_create_key(context.directory)
        self.service = BcbService(context, self.key)
        # BCB's only notice is the 300001 bounce; the platform acknowledges it in AIPG (docs/banks/bcb.md).
        context.use_acknowledgement(self.service.payouts.acknowledges)

    @property
    def context(self) -> BankContext:
        return self._context

    def asgi_app(self) -> ASGIApp:
        return build_app(self.service, self.key)

    async def start(self) -> None:
        self._context.notifier.start()

    async def stop(self) -> None:
        await self._context.notifier.stop()


def create_bank(context: BankContext) -> BcbBank:
    return BcbBank(context)
