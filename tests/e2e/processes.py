"""Helpers for end-to-end tests: ``tianpay up`` as a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tianpay.entrypoints.launcher import free_port_block

# How many of the platform's log lines a failure message quotes.
LOG_TAIL_LINES = 40


@dataclass
class RunningUp:
    """A ``tianpay up --json`` process and what it announced."""

    process: subprocess.Popen[str]
    log_path: Path
    announced: dict[str, Any] = field(default_factory=dict)

    def log_tail(self) -> str:
        """The end of the processes' log, for a failure message: why start-up or shut-down failed."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])


def spawn_up(
    data_dir: Path, *, env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None
) -> RunningUp:
    """``tianpay up --json`` started and not waited for.

    Its children's logs go to a file beside the data directory, read by the session's log scan
    (tests/conftest.py: no card, ID or phone number, password, SMS code or key in clear).
    """
    port = free_port_block()
    log_path = data_dir.with_name(data_dir.name + "-up.log")
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tianpay", "up", "--data-dir", str(data_dir), "--port", str(port), "--json"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **(env or {})},
            preexec_fn=preexec_fn,
        )
    return RunningUp(process, log_path)


@contextmanager
def started_up(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[RunningUp]:
    """Starts ``tianpay up --json`` and yields it once it has announced itself; kills it if still running."""
    up = spawn_up(data_dir, env=env, preexec_fn=preexec_fn)
    process = up.process
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                up.announced.update(json.loads(line))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout_s) or not up.announced:
            raise RuntimeError(f"tianpay up did not announce itself; its log ends:\n{up.log_tail()}")
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"tianpay up exited with {code} at start-up; its log ends:\n{up.log_tail()}")
        yield up
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop_with_sigint(up: RunningUp, timeout_s: float = 60) -> int:
    """Ctrl-C, as a person would stop it; returns its exit code, or fails quoting its log."""
    up.process.send_signal(signal.SIGINT)
    try:
        # The supervisor stops its children together (10 s at most, then SIGKILL); a loaded CI
        # machine needs the margin.
        return up.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"tianpay up did not stop within {timeout_s:.0f}s of SIGINT; its log ends:\n{up.log_tail()}"
        ) from None


@contextmanager
def tianpay_up(
    data_dir: Path, *, env: dict[str, str] | None = None, timeout_s: float = 120
) -> Iterator[dict[str, Any]]:
    """Runs ``tianpay up --json`` and yields what it printed; stops it with SIGINT afterwards."""
    with started_up(data_dir, env=env, timeout_s=timeout_s) as up:
        try:
            yield up.announced
        finally:
            if up.process.poll() is None:
                stop_with_sigint(up)
