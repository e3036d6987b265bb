"""Listening ports for local instances are chosen where no outgoing connection can take them."""

from __future__ import annotations

import socket

import pytest

from tianpay.entrypoints import launcher
from tianpay.entrypoints.launcher import LISTEN_PORTS_FROM, PORTS_PER_INSTANCE, free_port, free_port_block


def test_a_block_lies_below_the_ephemeral_range_and_every_port_in_it_can_be_bound() -> None:
    low = launcher._ephemeral_range()[0]
    base = free_port_block()
    assert base >= LISTEN_PORTS_FROM
    assert base + PORTS_PER_INSTANCE <= low
    sockets = []
    try:
        for port in range(base, base + PORTS_PER_INSTANCE):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(listener)
            listener.bind(("127.0.0.1", port))
            listener.listen()
    finally:
        for listener in sockets:
            listener.close()


def test_blocks_handed_out_are_not_handed_out_again_before_their_servers_bind() -> None:
    blocks = [free_port_block() for _ in range(50)]
    ports = [base + offset for base in blocks for offset in range(PORTS_PER_INSTANCE)]
    singles = [free_port() for _ in range(50)]
    assert len(set(ports + singles)) == len(ports) + len(singles)


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", _bindable_port()))
        taken.listen()
        busy = int(taken.getsockname()[1])
        spare = _bindable_port(avoid={busy})
        # The chooser draws the busy port twice before a free one: only the free one may come back.
        draws = iter([busy, busy, spare])

        class Chooser:
            def randrange(self, _start: int, _stop: int) -> int:
                return next(draws)

        monkeypatch.setattr(launcher, "_CHOOSER", Chooser())
        assert free_port() == spare


def _bindable_port(avoid: frozenset[int] | set[int] = frozenset()) -> int:
    """A port in the listening range that nobody holds now and this process never handed out."""
    for port in range(LISTEN_PORTS_FROM + 7_000, LISTEN_PORTS_FROM + 9_000):
        if port not in avoid and port not in launcher._HANDED_OUT and launcher._is_free(port):
            return port
    raise AssertionError("no bindable port")
