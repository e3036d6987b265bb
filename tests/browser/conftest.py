"""Fixtures for browser tests: ``tianpay up`` as real processes, a merchant's site, headless Chromium.

Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright. When it (or Playwright) is missing
the tests are skipped locally, but under CI (``CI`` set) that is an error, as for PostgreSQL in
``tests/conftest.py``: CI must prove the pages in a real browser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.processes import tianpay_up
from tianpay.bootstrap import build_container
from tianpay.config import Settings
from tianpay.domain.errors import NotFound
from tianpay.entrypoints.demo_receiver import MerchantSite
from tianpay_sdk import TianpayClient

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# A phone-sized window keeps the screenshots small and shows the cashier as most payers see it.
VIEWPORT = {"width": 480, "height": 640}


def _why_no_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser per module: Playwright's sync API keeps an event loop running in this thread
    while it lives, so it must be gone before later tests call ``asyncio.run`` (tests/pos)."""
    reason = _why_no_browser()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport=VIEWPORT, locale="zh-CN")  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Saves ``docs/screenshots/<name>.png`` when TIANPAY_SCREENSHOTS=1 (the docs' pictures)."""
    if os.environ.get("TIANPAY_SCREENSHOTS") != "1":
        return
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"), full_page=True)


@dataclass
class Platform:
    """``tianpay up`` as printed, its data directory, the merchant's site and an SDK client."""

    up: dict[str, Any]
    data_dir: Path
    site: MerchantSite
    client: TianpayClient

    @property
    def webhook_secret(self) -> str:
        return str(self.up["merchant"]["webhook_secret"])

    def bank_url(self, bank: str) -> str:
        return str(self.up["banks"][bank])

    def bank_balance(self, bank: str, acc_no: str) -> int:
        state = httpx.get(self.bank_url(bank) + "/_sim/state", timeout=10.0).json()
        return int(next(a["balance_minor"] for a in state["accounts"] if a["acc_no"] == acc_no))

    def ledger_balance(self, code: str) -> int:
        """An account's balance read from the platform's database, as the operator's tools would."""
        container = build_container(Settings(data_dir=self.data_dir, database_url=None))
        try:
            with container.uow() as uow:
                return uow.ledger.balance(code).minor
        except NotFound:
            return 0
        finally:
            container.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tianpay", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("platform") / "data"
    with tianpay_up(data_dir, env={"TIANPAY_DATABASE_URL": ""}) as up:
        merchant = up["merchant"]
        with MerchantSite(merchant["webhook_secret"]) as site:
            platform = Platform(up, data_dir, site, _client(up))
            updated = platform.cli(
                "merchant", "update", "--merchant", merchant["merchant_id"], "--webhook-url", site.webhook_url, "--json"
            )
            assert updated.returncode == 0, updated.stderr
            assert json.loads(updated.stdout)["webhook_url"] == site.webhook_url
            with platform.client:
                yield platform


def _client(up: dict[str, Any]) -> TianpayClient:
    merchant = up["merchant"]
    key = httpx.get(up["api"] + "/v1/platform-keys", timeout=10.0).json()["data"][0]
    return TianpayClient(
        up["api"],
        merchant["merchant_id"],
        merchant["key_id"],
        Path(merchant["private_key_path"]).read_bytes(),
        platform_public_key=key["public_key_pem"],
        platform_key_id=key["key_id"],
    )
