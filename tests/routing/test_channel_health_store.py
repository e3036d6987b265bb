"""The breaker's state lives in ``channel_health``: every process sees it, writes are compare-and-set."""

from __future__ import annotations

from datetime import timedelta

from tianpay.adapters.clock import SettableClock
from tianpay.domain.channel_health import BreakerPolicy, BreakerState, Signal
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import routing

POLICY = BreakerPolicy(failure_threshold=2, window=timedelta(seconds=60), cool_down=timedelta(seconds=30))


def test_the_breaker_is_stored_and_a_stale_write_loses(uow_factory: UnitOfWorkFactory, clock: SettableClock) -> None:
    for _ in range(2):
        routing.observe(uow_factory, clock, "hbb.quick_pay", Signal.UNHEALTHY, POLICY, failure="not_submitted 91")
    (stored,) = routing.channel_health(uow_factory)
    assert (stored.state, stored.last_failure) == (BreakerState.OPEN, "not_submitted 91")
    assert not routing.admit(uow_factory, clock, "hbb.quick_pay", POLICY)
    with uow_factory() as uow:
        assert not uow.channel_health.save(stored, expected_version=stored.version - 1)
    clock.advance(timedelta(seconds=30))
    assert routing.admit(uow_factory, clock, "hbb.quick_pay", POLICY)
    assert not routing.admit(uow_factory, clock, "hbb.quick_pay", POLICY), "a second process gets no probe"
    routing.observe(uow_factory, clock, "hbb.quick_pay", Signal.HEALTHY, POLICY)
    (closed,) = routing.channel_health(uow_factory)
    assert closed.state is BreakerState.CLOSED
