"""``tianpay up`` brings every process up, answers signed requests, and stops everything on Ctrl-C."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

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
        # TCS's entry is its ISO 8583 address (host:port), not an HTTP bank (DESIGN.md §2).
        assert set(up["banks"]) >= {"HBB", "JHB", "BCB", "TCS"}
        assert not up["banks"]["TCS"].startswith("http")
        for code, url in _http_banks(up).items():
            assert httpx.get(f"{url}/_sim/state").status_code == 200, code
        assert httpx.get(f"{up['tcs_admin']}/_sim/state").json()["acquirers"][0]["acquirer_id"] == "48990001"
        port = int(up["api"].rsplit(":", 1)[1])
        assert up["pos_front"] == f"127.0.0.1:{port + 5}"
        assert up["banks"]["TCS"] == f"127.0.0.1:{port + 4}"
        for address in (up["pos_front"], up["banks"]["TCS"]):
            with socket.create_connection(_split(address), timeout=5):
                pass
    # After SIGINT every child is gone: nothing answers any more.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{up['api']}/v1/platform-keys", timeout=2)
    for url in _http_banks(up).values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/_sim/state", timeout=2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(_split(up["pos_front"]), timeout=2).close()


def _http_banks(up: dict[str, Any]) -> dict[str, str]:
    return {code: url for code, url in up["banks"].items() if url.startswith("http")}


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def test_a_second_up_on_the_same_data_dir_reuses_the_demo_merchant(tmp_path: Path) -> None:
    with tianpay_up(tmp_path / "data") as first:
        pass
    with tianpay_up(tmp_path / "data") as second:
        pass
    assert first["merchant"] == second["merchant"]
    assert first["operator"] == second["operator"]
