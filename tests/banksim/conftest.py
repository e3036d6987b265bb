"""Fixtures for the bank simulator tests: one real banksim world per session, served on loopback.

The world runs as `python -m banksim serve --base-port 0 --json` in a subprocess with the
notification schedule compressed (`BANKSIM_NOTIFY_SCALE=0.001`: retries after 60, 120, 240 ms …)
and magic 96/97 holding requests for `BANKSIM_HANG_S=3` seconds. Its log is a file in its data
directory, which the session's log scan reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from banksim.core.bank import SimConfig
from banksim.world import World
from tests.banksim.acp_kit import Browser, Platform, Receiver

HANG_S = 3.0
WORLD_LOG = "banksim.log"


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("banksim-world")


@contextlib.contextmanager
def served_world(directory: Path) -> Iterator[dict[str, str]]:
    """`python -m banksim serve` on `directory`, until the block ends: the banks' URLs by code.

    The world's stderr goes to `<directory>/banksim.log`, under the session's temporary directory,
    where the session-wide log scan (tests/security/log_scan.py) reads every `*.log` at the end; a
    pipe would hide those lines from it (and could fill up and block the simulators).
    """
    env = {**os.environ, "BANKSIM_NOTIFY_SCALE": "0.001", "BANKSIM_HANG_S": str(HANG_S)}
    log_path = directory / WORLD_LOG
    command = [sys.executable, "-m", "banksim", "serve", "--data-dir", str(directory), "--base-port", "0", "--json"]
    with log_path.open("a", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise RuntimeError(f"banksim did not start:\n{log_path.read_text(encoding='utf-8')}")
    try:
        yield json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


@pytest.fixture(scope="session")
def bank_urls(world_dir: Path) -> Iterator[dict[str, str]]:
    with served_world(world_dir) as urls:
        yield urls


@pytest.fixture(scope="session")
def hbb_url(bank_urls: dict[str, str]) -> str:
    return bank_urls["HBB"]


@pytest.fixture(scope="session")
def platform(hbb_url: str) -> Platform:
    platform = Platform.create()
    platform.onboard(hbb_url)
    return platform


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def browser(hbb_url: str) -> Iterator[Browser]:
    browser = Browser(hbb_url)
    yield browser
    browser.close()


def balance(bank_url: str, acc_no: str) -> int:
    state = httpx.get(f"{bank_url}/_sim/state").json()
    return next(a["balance_minor"] for a in state["accounts"] if a["acc_no"] == acc_no)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world seeded once per session; copying it is much faster than hashing every PIN again."""
    directory = tmp_path_factory.mktemp("seeded-template")
    World(SimConfig(data_dir=directory)).close()
    return directory


def copy_world(template: Path, target: Path) -> World:
    shutil.copytree(template / "banks", target / "banks", dirs_exist_ok=True)
    return World(SimConfig(data_dir=target))
