"""The demo merchant's portal login that ``tianpay up`` seeds, created once.

The generated password is kept in ``<data-dir>/demo-merchant-portal.json`` (mode 0600) beside the demo
merchant's other credentials, so every later start prints the same login; the database holds only its
argon2id hash.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from tianpay.bootstrap import Container
from tianpay.entrypoints.merchant_portal.routes import portal_tools
from tianpay.services.merchant_users import create_user

DEMO_PORTAL_FILE = "demo-merchant-portal.json"
DEMO_USERNAME = "demo.shop"


@dataclass(frozen=True, slots=True)
class DemoPortalLogin:
    username: str
    password: str


def ensure_demo_portal_login(container: Container, merchant_id: str) -> DemoPortalLogin:
    path = container.settings.data_dir / DEMO_PORTAL_FILE
    existing = _load(path)
    with container.uow() as uow:
        known = existing is not None and uow.merchant_users.by_username(existing.username) is not None
    if existing is not None and known:
        return existing
    demo = DemoPortalLogin(DEMO_USERNAME, secrets.token_urlsafe(12))
    create_user(container.uow, portal_tools(container), merchant_id, demo.username, demo.password)
    _save(path, demo)
    return demo


def _load(path: Path) -> DemoPortalLogin | None:
    if not path.exists():
        return None
    return DemoPortalLogin(**json.loads(path.read_text("utf-8")))


def _save(path: Path, demo: DemoPortalLogin) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(demo), handle)
