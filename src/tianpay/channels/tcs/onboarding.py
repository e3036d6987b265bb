"""Onboarding with TCS: our acquirer id (F32) and the zone keys ZPK (PINs) and ZAK (MACs).

TCS hands them out at ``POST {admin_url}/_sim/partners`` (docs/banks/tcs.md §7), idempotently for
one acquirer id, with its ISO address and the bank where acquired money lands (HBB's reserve).
``onboard_tcs`` checks the keys against their check values and writes
``<data-dir>/channels/tcs/onboarding.json`` (mode 0600); ``load_tcs_config`` reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import httpx

from tianpay.channels.tcs.config import TcsConfig
from tianpay.channels.tcs.signing import encrypt_ecb

ONBOARDING_FILE: Final = "onboarding.json"
PARTNERS_PATH: Final = "/_sim/partners"
ACQUIRER_ID: Final = "48990001"
PLATFORM_NAME: Final = "天付支付"


class OnboardingFailed(Exception):
    """TCS refused, could not be reached, or sent keys whose check values do not match."""


def tcs_directory(data_dir: Path) -> Path:
    return data_dir / "channels" / "tcs"


def _kcv(key: bytes) -> str:
    # TCS's check value is 3 bytes (docs/banks/tcs.md §3); the terminal side uses 4 (BANKS.md).
    return encrypt_ecb(key, bytes(8))[:3].hex().upper()


def onboard_tcs(data_dir: Path, admin_url: str, *, timeout_s: float = 10.0) -> TcsConfig:
    try:
        answer = httpx.post(
            admin_url.rstrip("/") + PARTNERS_PATH,
            json={"acquirer_id": ACQUIRER_ID, "name": PLATFORM_NAME},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise OnboardingFailed(f"TCS unreachable at {admin_url}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise OnboardingFailed(f"TCS refused onboarding: HTTP {answer.status_code}")
    document: dict[str, Any] = answer.json()
    zpk, zak = bytes.fromhex(document["zpk"]), bytes.fromhex(document["zak"])
    if _kcv(zpk) != str(document["zpk_kcv"]).upper() or _kcv(zak) != str(document["zak_kcv"]).upper():
        raise OnboardingFailed("TCS zone keys do not match their check values")
    stored = {
        "host": document["iso_host"],
        "port": int(document["iso_port"]),
        "acquirer_id": document["acquirer_id"],
        "zpk": zpk.hex().upper(),
        "zak": zak.hex().upper(),
        "settlement_bank": document.get("settlement_bank", "HBB"),
        # The clearing file is fetched from the same admin address (tianpay.channels.tcs.statement).
        "admin_url": admin_url.rstrip("/"),
    }
    path = tcs_directory(data_dir) / ONBOARDING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle)
    config = load_tcs_config(data_dir)
    assert config is not None
    return config


def load_tcs_config(data_dir: Path, *, timeout_s: float = 5.0) -> TcsConfig | None:
    path = tcs_directory(data_dir) / ONBOARDING_FILE
    if not path.exists():
        return None
    document = json.loads(path.read_text())
    return TcsConfig(
        host=str(document["host"]),
        port=int(document["port"]),
        institution_id=str(document["acquirer_id"]),
        zpk=bytes.fromhex(document["zpk"]),
        zak=bytes.fromhex(document["zak"]),
        settlement_bank=str(document["settlement_bank"]),
        timeout_s=timeout_s,
        admin_url=str(document.get("admin_url", "")),
    )
