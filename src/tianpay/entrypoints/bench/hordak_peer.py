"""The django-hordak half of ``bench ledger``, run as its own process (Django's settings are global).

It configures a throwaway Django project in code (PostgreSQL, ``mptt`` and ``hordak``), applies
hordak's migrations to the scratch database it is given, and times the same transfers as the Tianpay
half: W wallet accounts funded once, then N 1-fen transfers wallet → merchant, a batch per
``transaction.atomic`` block, from several threads. Django and hordak are imported by name, not
statically, so the type checker and CI never need the ``bench`` extra.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit


def _configure(url: str) -> None:
    parts = urlsplit(url)
    settings: Any = importlib.import_module("django.conf").settings
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "postgres",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "127.0.0.1",
                "PORT": str(parts.port or 5432),
            }
        },
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "mptt", "hordak"],
        USE_TZ=True,
        DEFAULT_CURRENCY="CNY",
        HORDAK_CURRENCIES=["CNY"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    importlib.import_module("django").setup()
    importlib.import_module("django.core.management").call_command("migrate", verbosity=0)


def run(plan: dict[str, Any]) -> dict[str, Any]:
    _configure(plan["url"])
    account_model: Any = importlib.import_module("hordak.models").Account
    money: Any = importlib.import_module("djmoney.money").Money
    db: Any = importlib.import_module("django.db")
    entries, threads, batch, wallets = plan["entries"], plan["threads"], plan["batch"], plan["wallets"]
    liability = account_model.TYPES.liability
    merchants = [
        account_model.objects.create(name=f"merchant pending {n}", type=liability, currencies=["CNY"])
        for n in range(plan["merchants"])
    ]
    bank = account_model.objects.create(name="bank reserve", type=account_model.TYPES.asset, currencies=["CNY"])
    members = [
        account_model.objects.create(name=f"wallet {n}", type=liability, currencies=["CNY"]) for n in range(wallets)
    ]
    for member in members:
        bank.transfer_to(member, money(100_000_000, "CNY"))
    db.connections.close_all()
    failures: list[BaseException] = []

    def worker(first: int) -> None:
        try:
            numbers = list(range(first, entries, threads))
            for start in range(0, len(numbers), batch):
                with db.transaction.atomic():
                    for n in numbers[start:start + batch]:
                        members[n % wallets].transfer_to(merchants[n % len(merchants)], money("0.01", "CNY"))
        except BaseException as exc:  # reported by the caller
            failures.append(exc)
        finally:
            db.connections.close_all()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return {"seconds": elapsed, "version": version("django-hordak")}


if __name__ == "__main__":
    result = run(json.load(sys.stdin))
    sys.stdout.write(json.dumps(result) + "\n")
