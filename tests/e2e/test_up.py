"""``tianpay up`` brings every process up, answers signed requests, and stops everything on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import tianpay_up
from tianpay_sdk import TianpayClient

pytestmark = pytest.mark.e2e


def test_up_serves_the_demo_merchant_and_the_banks_then_stops_cleanly(tmp_path: Path) -> None:
    with tianpay_up(tmp_path / "data") as up:
        merchant = up["merchant"]
        assert set(up["banks"]) >= {"HBB", "JHB"}
        assert up["database"].startswith("sqlite:///")
        assert up["operator"]["username"] == "admin"
        assert len(up["operator"]["password"]) >= 12
        platform_key = httpx.get(f"{up['api']}/v1/platform-keys").json()
        key = platform_key["data"][0]
        with TianpayClient(
            up["api"],
            merchant["merchant_id"],
            merchant["key_id"],
            Path(merchant["private_key_path"]).read_bytes(),
            platform_public_key=key["public_key_pem"],
            platform_key_id=key["key_id"],
        ) as client:
            balance = client.balance.retrieve()
        assert balance["pending"]["amount"] == 0
        for code, url in up["banks"].items():
            assert httpx.get(f"{url}/_sim/state").status_code == 200, code
    # After SIGINT every child is gone: nothing answers any more.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{up['api']}/v1/platform-keys", timeout=2)
    for url in up["banks"].values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/_sim/state", timeout=2)


def test_a_second_up_on_the_same_data_dir_reuses_the_demo_merchant(tmp_path: Path) -> None:
    with tianpay_up(tmp_path / "data") as first:
        pass
    with tianpay_up(tmp_path / "data") as second:
        pass
    assert first["merchant"] == second["merchant"]
    assert first["operator"] == second["operator"]
