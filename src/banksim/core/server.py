"""Serving several ASGI apps, one per bank, from one asyncio loop with uvicorn.

uvicorn's `Server.serve` installs its own signal handlers and would fight over them when several
servers share a process, so `_BankServer` turns that off and `serve_all` handles SIGINT/SIGTERM
once for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.types import ASGIApp


class _BankServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class Listener:
    code: str
    app: ASGIApp
    port: int


async def serve_all(
    listeners: list[Listener],
    host: str,
    on_ready: Callable[[dict[str, str]], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Run every listener until `stop` is set (or SIGINT/SIGTERM arrives), then shut down cleanly.

    `on_ready` receives `{code: base URL}` once every bank answers `/_sim/health`. Port 0 asks the
    OS for a free port; the URLs report the ports actually bound.
    """
    servers = [_server(listener, host) for listener in listeners]
    _install_signal_handlers(stop)
    tasks = [
        asyncio.create_task(server.serve(), name=f"bank-{listener.code}")
        for server, listener in zip(servers, listeners, strict=True)
    ]
    try:
        urls = await _wait_until_answering(servers, listeners, host, tasks)
        await on_ready(urls)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def _server(listener: Listener, host: str) -> _BankServer:
    config = uvicorn.Config(
        listener.app,
        host=host,
        port=listener.port,
        log_level="warning",
        # No logging config of uvicorn's own: its loggers then propagate to the root handler, which
        # redacts every line (banksim/core/logs.py); uvicorn's default handlers would bypass it.
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    return _BankServer(config)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _wait_until_answering(
    servers: list[_BankServer], listeners: list[Listener], host: str, tasks: list[asyncio.Task[None]]
) -> dict[str, str]:
    while not all(s.started for s in servers):
        failed = [t for t in tasks if t.done()]
        if failed:
            raise RuntimeError(f"a bank failed to start: {failed[0].get_name()}")
        await asyncio.sleep(0.02)
    urls = {
        listener.code: f"http://{host}:{server.servers[0].sockets[0].getsockname()[1]}"
        for server, listener in zip(servers, listeners, strict=True)
    }
    async with httpx.AsyncClient(timeout=2.0) as client:
        for url in urls.values():
            await _poll_health(client, url)
    return urls


async def _poll_health(client: httpx.AsyncClient, url: str) -> None:
    for _ in range(200):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{url}/_sim/health")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} does not answer")
