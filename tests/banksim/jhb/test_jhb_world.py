"""JHB takes its place in the simulated world: the world builds it from `banksim.jhb.create_bank`."""

from __future__ import annotations

from pathlib import Path

import httpx

from banksim.core.bank import SimConfig
from banksim.jhb import JhbBank
from banksim.world import World


def test_the_world_builds_jhb_from_its_package(tmp_path: Path) -> None:
    world = World(SimConfig(data_dir=tmp_path))
    try:
        bank = world.banks["JHB"]
        assert isinstance(bank, JhbBank)
        assert bank.context.profile.port_offset == 1
        reserve = world.books("JHB").account("6227990000000000997")
        assert reserve is not None
    finally:
        world.close()


def test_jhb_keeps_its_signing_key_across_restarts(tmp_path: Path) -> None:
    first = World(SimConfig(data_dir=tmp_path))
    key_hex = first.banks["JHB"].keyring.public_key.public_numbers()  # type: ignore[attr-defined]
    first.close()
    second = World(SimConfig(data_dir=tmp_path))
    try:
        assert second.banks["JHB"].keyring.public_key.public_numbers() == key_hex  # type: ignore[attr-defined]
    finally:
        second.close()


def test_jhb_serves_the_framework_routes(http: httpx.Client) -> None:
    assert http.get("/_sim/health").json()["bank"] == "JHB"
    assert http.get("/sms").status_code == 200
