"""A quick-pay attempt swallowed by an HBB outage (HTTP 503) against the real banks, on both databases.

The 503 says nothing about the order, so the attempt is unknown, the payment processing, and nothing
fails over or is sent again. Once HBB is back its query answers "no such transaction" (34); that
becomes final when HBB could no longer take the order (the payment's expiry plus the absent-order
margin, docs/gateway.md "Absent orders"), and the payment then follows its lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.bindings.conftest import PAYMENT_PASSWORD, Binder
from tests.gateway.conftest import new_payment
from tests.routing.test_failover import Checkout, Payer, checkout, moved_into_reserve, payer
from tianpay.domain.payment import AttemptStatus, PaymentMethod, PaymentStatus
from tianpay.services import quick_pay
from tianpay.services.gateway import requery_attempts
from tianpay.services.payments import get_payment

pytestmark = pytest.mark.e2e

__all__ = ["checkout", "payer"]


@pytest.fixture
def hbb_outage(binder: Binder) -> Iterator[str]:
    """HBB behind a gateway answering HTTP 503 to everything until the test lifts it; yields HBB's URL."""
    hbb = binder.world.urls["HBB"]
    httpx.post(f"{hbb}/_sim/faults", json={"outage": True}, timeout=10).raise_for_status()
    yield hbb
    httpx.post(f"{hbb}/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()


def requery(checkout: Checkout, after: timedelta) -> int:
    checkout.clock.advance(after)
    return requery_attempts(checkout.uow, checkout.clock, checkout.ids, checkout.channels,  # type: ignore[arg-type]
                            checkout.settings.gateway, checkout.clock.now())  # fmt: skip


@pytest.mark.parametrize(("method", "ends"), [(PaymentMethod.QUICK_PAY, PaymentStatus.FAILED),
                                              (PaymentMethod.CASHIER, PaymentStatus.CLOSED)])  # fmt: skip
def test_an_attempt_swallowed_by_an_outage_fails_once_hbb_still_has_no_order_after_the_expiry(
    checkout: Checkout, payer: Payer, binder: Binder, hbb_outage: str, method: PaymentMethod, ends: PaymentStatus
) -> None:
    payment = new_payment(checkout.uow, checkout.clock, checkout.ids, checkout.merchant_id, 4_001, method=method)
    confirmed = quick_pay.confirm_quick_pay(
        checkout.uow, checkout.clock, checkout.ids, checkout.channels, checkout.tools,  # type: ignore[arg-type]
        checkout.settings, merchant_id=checkout.merchant_id, payment_id=payment.id,
        card_id=payer.cards["HBB"].id, payment_password=PAYMENT_PASSWORD,
    )
    # Unknown, so no failover to the member's JHB card: HBB might have taken the money.
    assert confirmed.status is PaymentStatus.PROCESSING
    assert checkout.attempts(confirmed) == [("HBB", AttemptStatus.UNKNOWN, None)]
    # During the outage HBB's query is answered 503 as well: still unknown.
    assert requery(checkout, timedelta(seconds=61)) == 1
    assert checkout.attempts(confirmed) == [("HBB", AttemptStatus.UNKNOWN, None)]
    httpx.post(f"{hbb_outage}/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()

    # HBB is back and has no such order, but before the expiry (+ margin) that is only an absence.
    margin = timedelta(seconds=checkout.settings.gateway.absent_order_margin_s)
    checkout.clock.set(payment.expires_at + margin - timedelta(seconds=1))
    assert requery(checkout, timedelta(0)) == 1
    assert checkout.attempts(confirmed) == [("HBB", AttemptStatus.UNKNOWN, None)]
    assert get_payment(checkout.uow, checkout.merchant_id, payment.id).payment.status is PaymentStatus.PROCESSING

    assert requery(checkout, timedelta(minutes=31)) == 1
    assert checkout.attempts(confirmed) == [("HBB", AttemptStatus.FAILED, "34")]
    assert get_payment(checkout.uow, checkout.merchant_id, payment.id).payment.status is ends
    assert requery(checkout, timedelta(hours=1)) == 0, "a final attempt is never queried again"
    with checkout.uow() as uow:
        attempt_ids = [a.id for a in uow.payments.attempts_of(payment.id)]
    # Never sent again, never failed over: neither bank moved money for this payment.
    assert len(attempt_ids) == 1
    assert moved_into_reserve(binder.world, "HBB", attempt_ids) == 0
    assert moved_into_reserve(binder.world, "JHB", attempt_ids) == 0
