"""``tianpay up`` leaves no orphan: its children die with it, even when it is killed with SIGKILL
(``PR_SET_PDEATHSIG``); SIGTERM stops every child as Ctrl-C does, and Ctrl-C works even when
``tianpay up`` was started with SIGINT ignored."""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from tests.e2e.processes import spawn_up, started_up, stop_with_sigint

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"),
]

# Generous: a child stops as on Ctrl-C (uvicorn drains, the worker finishes its tick), on a shared machine.
GONE_DEADLINE_S = 60.0


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
    with started_up(tmp_path / "data") as running:
        up = running.process
        children = children_of(up.pid)
        # The banks, serve, worker and pos-front.
        assert len(children) == 4
        up.kill()
        up.wait()
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"orphans left running: {sorted(left)}"


def test_sigterm_stops_up_and_every_child(tmp_path: Path) -> None:
    with started_up(tmp_path / "data") as running:
        up = running.process
        children = children_of(up.pid)
        assert len(children) == 4
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=GONE_DEADLINE_S) == 0
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"children left running: {sorted(left)}"


def ignore_sigint() -> None:
    """What a background job of a non-interactive shell (how CI harnesses run suites) starts with."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_during_start_up_stops_up_even_when_it_was_started_with_sigint_ignored(tmp_path: Path) -> None:
    # Python keeps an inherited SIG_IGN, so a launcher relying on the default handler would ignore
    # this Ctrl-C and go on starting; ``up`` installs its own and stops what it had started.
    up = spawn_up(tmp_path / "data", preexec_fn=ignore_sigint)
    try:
        deadline = time.monotonic() + GONE_DEADLINE_S
        while not (children := children_of(up.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children, "tianpay up started no child"
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(timeout=GONE_DEADLINE_S) == 130, up.log_tail()
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"children left running: {sorted(left)}"
    finally:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()


def test_ctrl_c_stops_up_even_when_it_was_started_with_sigint_ignored(tmp_path: Path) -> None:
    # Ctrl-C sent the moment ``up`` announces itself must find the supervisor's own handler.
    with started_up(tmp_path / "data", preexec_fn=ignore_sigint) as running:
        children = children_of(running.process.pid)
        assert stop_with_sigint(running) == 0
        left = wait_until_gone(children)
        kill_all(left)
        assert not left, f"children left running: {sorted(left)}"
