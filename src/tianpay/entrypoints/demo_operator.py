"""The demo operator ``tianpay up`` seeds: an admin login for the console, created once.

The generated password is kept in ``<data-dir>/demo-operator.json`` (mode 0600) beside the demo
merchant's credentials, so every later start prints the same login; the database holds only its
argon2id hash.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from tianpay.bootstrap import Container
from tianpay.domain.operator import Role
from tianpay.services.operators import create_operator

DEMO_OPERATOR_FILE = "demo-operator.json"
DEMO_USERNAME = "admin"


@dataclass(frozen=True, slots=True)
class DemoOperator:
    username: str
    password: str


def ensure_demo_operator(container: Container) -> DemoOperator:
    path = container.settings.data_dir / DEMO_OPERATOR_FILE
    existing = _load(path)
    with container.uow() as uow:
        known = existing is not None and uow.operators.get(existing.username) is not None
    if existing is not None and known:
        return existing
    demo = DemoOperator(DEMO_USERNAME, secrets.token_urlsafe(12))
    create_operator(
        container.uow, container.clock, container.member_tools.hasher, demo.username, demo.password, Role.ADMIN
    )
    _save(path, demo)
    return demo


def _load(path: Path) -> DemoOperator | None:
    if not path.exists():
        return None
    return DemoOperator(**json.loads(path.read_text("utf-8")))


def _save(path: Path, demo: DemoOperator) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(demo), handle)
