"""``tianpay up`` and ``tianpay banks``: start every process on loopback and stop them together.

Children are separate processes (the API server, the worker, the bank simulators) so that each
behaves exactly as it would in production; the launcher only waits until each answers, prints where
everything is, and forwards SIGINT/SIGTERM so Ctrl-C stops all of them cleanly. Each child also
asks Linux to send it SIGTERM when the launcher dies (``PR_SET_PDEATHSIG``), so even a launcher
killed with SIGKILL leaves no orphan behind (docs/deploy.md, "Local instance").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

STARTUP_TIMEOUT_S = 60.0
# One instance takes seven consecutive ports: the platform, HBB, JHB, BCB, TCS (ISO), pos-front and
# TCS's admin (DESIGN.md §2 and docs/banks/tcs.md).
PORTS_PER_INSTANCE = 7
# DESIGN.md §2: pos-front listens on the platform's port + 5 (the banks take +1 … +4).
POS_FRONT_PORT_OFFSET = 5
# Listening ports are chosen from here up to the start of the ephemeral range (``free_port_block``);
# below it sit the well-known services (PostgreSQL on 5432 among them).
LISTEN_PORTS_FROM = 10_000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_HANDED_OUT: set[int] = set()
_CHOOSER = random.SystemRandom()
# prctl(2) option: the signal the kernel sends this process when the thread that forked it exits.
PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, or None where there is none (macOS, or a libc ctypes cannot find)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once in the parent: looking a library up between fork and exec is not safe.
_PRCTL = _load_prctl()


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies, however it dies.

    The child then stops as on Ctrl-C. If this process died between the fork and the ``prctl`` call,
    the child was already handed to another parent and would never be signalled, so it stops at once.
    None where ``prctl`` is absent: there ``tianpay up`` still stops its children on SIGINT/SIGTERM.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent_pid = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]


@dataclass
class Supervisor:
    """Owns the child processes and stops them all, in reverse order, exactly once."""

    children: list[Child] = field(default_factory=list)
    # Where children's output goes: None inherits the terminal (``tianpay up``); ``tianpay demo``
    # sends it to a log file so its own progress display stays readable.
    output: IO[str] | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _stop_requested: threading.Event = field(default_factory=threading.Event)
    _handling_signals: bool = False

    def start(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, capture: bool = False
    ) -> Child:
        process = subprocess.Popen(  # noqa: S603 - argv is built from our own executable and options
            list(argv),
            stdout=subprocess.PIPE if capture else self.output,
            stderr=self.output,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            # The kernel ties the child to the thread that forks it: callers start children from a
            # thread that lives as long as the launcher (the main thread in ``up`` and ``demo``).
            preexec_fn=die_with_parent_hook(),
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def first_exited(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def handle_signals(self) -> None:
        """From now on SIGINT and SIGTERM only ask ``wait_until_signalled`` to stop everything.

        Installed explicitly for both: a process started with SIGINT ignored (a CI harness's
        background job hands that on) would otherwise never hear the Ctrl-C meant to stop it.
        """
        def _handler(_signum: int, _frame: object) -> None:
            self._stop_requested.set()

        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)
        self._handling_signals = True

    def wait_until_signalled(self) -> int:
        """Blocks until SIGINT/SIGTERM or until a child dies; returns the exit code to use."""
        if not self._handling_signals:
            self.handle_signals()
        while not self._stop_requested.wait(0.5):
            dead = self.first_exited()
            if dead is not None:
                sys.stderr.write(f"{dead.name} exited with {dead.process.returncode}; stopping everything\n")
                self.stop()
                return 1
        self.stop()
        return 0


def interrupt(_signum: int, _frame: object) -> None:
    """A signal handler that turns SIGINT or SIGTERM into KeyboardInterrupt, as Ctrl-C is by default."""
    raise KeyboardInterrupt


def read_json_line(stream: IO[str] | None, timeout_s: float = STARTUP_TIMEOUT_S) -> dict[str, str]:
    """Reads the one JSON line a child prints once it is ready."""
    if stream is None:
        raise RuntimeError("the child's output is not captured")
    result: dict[str, str] = {}
    done = threading.Event()

    def _read() -> None:
        for line in stream:
            line = line.strip()
            if line.startswith("{"):
                result.update(json.loads(line))
                done.set()
                return
        done.set()

    threading.Thread(target=_read, daemon=True).start()
    if not done.wait(timeout_s) or not result:
        raise RuntimeError("the child did not announce itself in time")
    return result


def wait_until_answering(
    url: str, timeout_s: float = STARTUP_TIMEOUT_S, is_alive: Callable[[], bool] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_alive is not None and not is_alive():
            raise RuntimeError(f"the process behind {url} exited during start-up")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


def banks_argv(data_dir: Path, host: str, base_port: int) -> list[str]:
    return [
        sys.executable, "-m", "banksim", "serve",
        "--data-dir", str(data_dir), "--host", host, "--base-port", str(base_port), "--json",
    ]  # fmt: skip


def start_banks(
    supervisor: Supervisor, data_dir: Path, host: str, base_port: int, *, env: dict[str, str] | None = None
) -> dict[str, str]:
    child = supervisor.start("banks", banks_argv(data_dir, host, base_port), env=env, capture=True)
    urls = read_json_line(child.process.stdout)
    # Keep draining the child's stdout so a chatty bank can never block on a full pipe.
    threading.Thread(target=lambda: [None for _ in child.process.stdout or []], daemon=True).start()
    return urls


def read_tcs_endpoint(data_dir: Path) -> dict[str, Any]:
    """Where TCS listens: ``<data-dir>/banks/tcs/endpoint.json`` (docs/banks/tcs.md §1).

    TCS writes it before the banks announce their URLs, so once ``start_banks`` returned it is
    the current run's; it is not in the banks' JSON line because that map holds HTTP banks only.
    """
    path = data_dir / "banks" / "tcs" / "endpoint.json"
    endpoint: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return endpoint


def wait_until_accepting(
    host: str, port: int, timeout_s: float = STARTUP_TIMEOUT_S, is_alive: Callable[[], bool] | None = None
) -> None:
    """Waits until a TCP server (pos-front speaks ISO 8583, not HTTP) accepts connections."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_alive is not None and not is_alive():
            raise RuntimeError(f"the process behind {host}:{port} exited during start-up")
        try:
            with socket.create_connection((host, port), timeout=2.0):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{host}:{port} did not accept connections within {timeout_s:.0f}s")


def platform_argv(command: str, data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tianpay", command, "--data-dir", str(data_dir), *extra]


def up(*, data_dir: Path, host: str, port: int, as_json: bool) -> int:
    """Brings every process up on loopback, prints where they are, and runs until signalled."""
    # SIGINT and SIGTERM during start-up must stop the children already started: both raise
    # KeyboardInterrupt, which ``bring_up`` answers by stopping them before it lets go. Both are
    # installed here, not inherited: a SIGINT that arrived ignored would otherwise stay ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    try:
        supervisor, summary = bring_up(data_dir=data_dir, host=host, port=port)
    except KeyboardInterrupt:
        return 130
    try:
        # Before announcing: whoever reads the announcement may signal at once, and that signal
        # must find the supervisor's handlers, not the start-up ones.
        supervisor.handle_signals()
        if as_json:
            sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            print_summary(summary)
    except KeyboardInterrupt:
        supervisor.stop()
        return 130
    return supervisor.wait_until_signalled()


def bring_up(
    *, data_dir: Path, host: str, port: int, env: dict[str, str] | None = None, output: IO[str] | None = None
) -> tuple[Supervisor, dict[str, Any]]:
    """Starts the banks, the API server, the worker and pos-front; returns them and the summary.

    ``env`` is added to every child's environment (``tianpay demo`` compresses the schedules with it)
    and ``output`` receives their logs. On failure every child already started is stopped.
    """
    from tianpay.bootstrap import build_container
    from tianpay.channels.registry import onboard_banks
    from tianpay.config import Settings
    from tianpay.entrypoints.demo_merchant import ensure_demo_merchant
    from tianpay.entrypoints.demo_merchant_portal import ensure_demo_portal_login
    from tianpay.entrypoints.demo_operator import ensure_demo_operator

    data_dir = data_dir.resolve()
    # A local instance shows the platform's SMS outbox at /wallet/_dev/sms (never set in production).
    env = {"TIANPAY_DEV_SMS_OUTBOX": "true", **(env or {})}
    container = build_container(Settings(data_dir=data_dir, host=host, port=port))
    # Migrations run once here, before any child starts, so two processes never migrate at once.
    container.upgrade_database()
    supervisor = Supervisor(output=output)
    try:
        bank_urls = start_banks(supervisor, data_dir, host, port + 1, env=env)
        tcs = read_tcs_endpoint(data_dir)
        # TCS is onboarded over its HTTP admin (zone keys, docs/banks/tcs.md §7); the summary then
        # names its ISO 8583 address, the one the platform actually talks to (DESIGN.md §2).
        onboard_banks(data_dir, {**bank_urls, "TCS": str(tcs["admin_url"])})
        demo = ensure_demo_merchant(container)
        operator = ensure_demo_operator(container)
        portal_login = ensure_demo_portal_login(container, demo.merchant_id)
        database_url = container.engine.url.render_as_string(hide_password=True)
        api_url = f"http://{host}:{port}"
        serve = supervisor.start(
            "serve", platform_argv("serve", data_dir, "--host", host, "--port", str(port)), env=env
        )
        supervisor.start("worker", platform_argv("worker", data_dir), env=env)
        pos_port = port + POS_FRONT_PORT_OFFSET
        pos_front = supervisor.start(
            "pos-front", platform_argv("pos-front", data_dir, "--host", host, "--port", str(pos_port)), env=env
        )
        # Ready means the database answers with the current schema (entrypoints/health.py), not just HTTP.
        wait_until_answering(f"{api_url}/readyz", is_alive=lambda: serve.process.poll() is None)
        wait_until_accepting(host, pos_port, is_alive=lambda: pos_front.process.poll() is None)
    except BaseException:
        # KeyboardInterrupt included: the children live in their own sessions, so Ctrl-C reaches
        # only this process, and whatever was started must be stopped here.
        supervisor.stop()
        raise
    finally:
        container.close()
    summary: dict[str, Any] = {
        "api": api_url,
        "banks": {**bank_urls, "TCS": f"{tcs['iso_host']}:{tcs['iso_port']}"},
        "tcs_admin": str(tcs["admin_url"]),
        "pos_front": f"{host}:{pos_port}",
        "database": database_url,
        "merchant": {
            "merchant_id": demo.merchant_id,
            "key_id": demo.key_id,
            "private_key_path": demo.private_key_path,
            "webhook_secret": demo.webhook_secret,
        },
        "operator": {"username": operator.username, "password": operator.password},
        "merchant_portal": {"username": portal_login.username, "password": portal_login.password},
    }
    return supervisor, summary


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Tianpay is up", show_header=False)
    table.add_row("merchant API", f"{summary['api']}/v1   (docs: {summary['api']}/docs)")
    for code, url in summary["banks"].items():
        if url.startswith("http"):
            table.add_row(f"bank {code}", f"{url}   (SMS outbox {url}/sms)")
        else:
            table.add_row(f"card switch {code}", f"{url}   (ISO 8583; admin {summary['tcs_admin']}/_sim/faults)")
    table.add_row("POS front (terminals)", f"{summary['pos_front']}   (try: tianpay pos --help)")
    table.add_row("database", str(summary["database"]))
    table.add_row("wallet (payers)", f"{summary['api']}/wallet")
    for key, value in summary["merchant"].items():
        table.add_row(f"demo merchant {key}", str(value))
    table.add_row("operator console", f"{summary['api']}/console   "
                  f"({summary['operator']['username']} / {summary['operator']['password']})")
    portal = summary["merchant_portal"]
    table.add_row("merchant portal", f"{summary['api']}/merchant   ({portal['username']} / {portal['password']})")
    table.add_row("stop", "Ctrl-C stops every process")
    Console().print(table)


def free_port_block(size: int = PORTS_PER_INSTANCE) -> int:
    """A base port such that ``base … base+size-1`` are all free on loopback right now.

    Chosen below the kernel's ephemeral range, never from it: a port from that range can become
    the local port of any outgoing connection on the machine between this check and the server's
    bind, and the server then fails to start. Blocks handed out earlier by this process are
    avoided as well, since their servers may not have bound them yet.
    """
    low = _ephemeral_range()[0]
    top = low - size
    if top <= LISTEN_PORTS_FROM:
        raise RuntimeError(f"no room for listening ports below the ephemeral range (it starts at {low})")
    for _ in range(500):
        base = _CHOOSER.randrange(LISTEN_PORTS_FROM, top)
        block = set(range(base, base + size))
        if not block & _HANDED_OUT and all(_is_free(port) for port in block):
            _HANDED_OUT.update(block)
            return base
    raise RuntimeError("no free block of loopback ports")


def free_port() -> int:
    """One free loopback port for a server about to start (see ``free_port_block``)."""
    return free_port_block(1)


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default elsewhere)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
