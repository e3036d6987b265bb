"""The demo merchant 津门好物商城 that ``tianpay up`` seeds, created once and reused afterwards.

Its credentials are kept in ``<data-dir>/demo-merchant.json`` (mode 0600) so every later start
prints the same merchant, key and webhook secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tianpay.bootstrap import Container
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant
from tianpay.services.settlement import (
    AccountInput,
    SettingsChange,
    change_settlement_settings,
    settlement_settings,
)

DEMO_MERCHANT_NAME = "津门好物商城"
DEMO_FILE = "demo-merchant.json"
DEMO_SETTLEMENT_BANK = "BCB"
DEMO_SETTLEMENT_ACCOUNT_NO = "6230990000000000033"
DEMO_SETTLEMENT_ACCOUNT_NAME = "天津津门好物商贸有限公司"


@dataclass(frozen=True, slots=True)
class DemoMerchant:
    merchant_id: str
    key_id: str
    private_key_path: str | None
    webhook_secret: str


def ensure_demo_merchant(container: Container) -> DemoMerchant:
    path = container.settings.data_dir / DEMO_FILE
    existing = _load(path)
    if existing is not None and _exists(container, existing.merchant_id):
        ensure_demo_settlement(container, existing.merchant_id)
        return existing
    tools = KeyTools(container.ids, container.clock, container.key_issuer, container.vault)
    created = create_merchant(container.uow, tools, NewMerchant(DEMO_MERCHANT_NAME, KeyRequest(), None, 60))
    key_path = created.key.private_key_path
    demo = DemoMerchant(
        merchant_id=created.merchant_id,
        key_id=created.key.key_id,
        private_key_path=str(key_path.resolve()) if key_path is not None else None,
        webhook_secret=created.webhook_secret,
    )
    _save(path, demo)
    ensure_demo_settlement(container, demo.merchant_id)
    return demo


def ensure_demo_settlement(container: Container, merchant_id: str) -> None:
    """Settles the demo merchant T+1 to its corporate account at BCB with automatic payout (BANKS.md
    "Test customers"); a merchant that already has a settlement account keeps the one it has."""
    current = settlement_settings(container.uow, container.clock, merchant_id)
    if current.has_account:
        return
    change = SettingsChange(
        cycle_days=1,
        auto_payout=True,
        account=AccountInput(DEMO_SETTLEMENT_BANK, DEMO_SETTLEMENT_ACCOUNT_NO, DEMO_SETTLEMENT_ACCOUNT_NAME),
    )
    change_settlement_settings(container.uow, container.clock, container.member_tools.cipher, merchant_id, change)


def _exists(container: Container, merchant_id: str) -> bool:
    with container.uow() as uow:
        return uow.merchants.get(merchant_id) is not None


def _load(path: Path) -> DemoMerchant | None:
    if not path.exists():
        return None
    return DemoMerchant(**json.loads(path.read_text("utf-8")))


def _save(path: Path, demo: DemoMerchant) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(demo), handle, ensure_ascii=False, indent=2)
