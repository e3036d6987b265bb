"""Helpers for end-to-end tests: free port ranges and ``tianpay up`` as a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tianpay.entrypoints.launcher import free_port_block


@contextmanager
def tianpay_up(data_dir: Path, *, env: dict[str, str] | None = None, timeout_s: float = 90) -> Iterator[dict[str, Any]]:
    """Runs ``tianpay up --json`` and yields what it printed; stops it with SIGINT afterwards."""
    port = free_port_block()
    # The platform's logs go to a file beside the data directory, read by the session's log scan
    # (tests/conftest.py: no card, ID or phone number, password, SMS code or key in clear).
    log = data_dir.with_name(data_dir.name + "-up.log").open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "tianpay", "up", "--data-dir", str(data_dir), "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log.close()
    announced: dict[str, Any] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                announced.update(json.loads(line))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout_s) or not announced:
            raise RuntimeError("tianpay up did not announce itself")
        yield announced
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                # The supervisor stops its children in turn (10 s each at most); a loaded CI machine
                # needs the margin, and a supervisor killed here would leave them running.
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
