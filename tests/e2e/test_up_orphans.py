"""``tianpay up`` leaves no orphan: its children die with it, even when it is killed with SIGKILL
(``PR_SET_PDEATHSIG``), and SIGTERM stops every child as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tianpay.entrypoints.launcher import free_port_block

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
]

# Generous: a child stops as on Ctrl-C (uvicorn drains, the worker finishes its tick), on a shared machine.
GONE_DEADLINE_S = 60.0


@contextmanager
def running_up(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """``tianpay up --json`` as a real process, yielded once it has announced itself."""
    port = free_port_block()
    log = data_dir.with_name(data_dir.name + "-up.log").open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "tianpay", "up", "--data-dir", str(data_dir), "--port", str(port), "--json"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{") and json.loads(line).get("api"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), "tianpay up did not announce itself"
        assert process.poll() is None, "tianpay up exited during start-up"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _stat(int(entry.name))
            if state is not None and state[1] == pid and state[0] != "Z":
                found.add(int(entry.name))
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; the fields after it are fixed.
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, waiting for a reaper) counts as gone."""
    state = _stat(pid)
    return state is not None and state[0] != "Z"


def wait_until_gone(pids: set[int]) -> set[int]:
    """Polls until every pid has exited or the deadline passes; returns those still alive."""
    deadline = time.monotonic() + GONE_DEADLINE_S
    alive = {pid for pid in pids if is_alive(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if is_alive(pid)}
    return alive


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_killing_up_with_sigkill_takes_every_child_with_it(tmp_path: Path) -> None:
    with running_up(tmp_path / "data") as up:
        children = children_of(up.pid)
        # The banks, serve, worker and pos-front.
        assert len(children) == 4
        up.kill()
        up.wait()
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"orphans left running: {sorted(left)}"


def test_sigterm_stops_up_and_every_child(tmp_path: Path) -> None:
    with running_up(tmp_path / "data") as up:
        children = children_of(up.pid)
        assert len(children) == 4
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=GONE_DEADLINE_S) == 0
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"children left running: {sorted(left)}"
