"""What the merchant portal's pages read and do, each scoped to the signed-in user's merchant.

Reads go through ``uow.portal_queries`` and the existing repositories, always with the merchant id;
writes (refunds, key rotation, webhook settings, resends) go through the services the API uses, so
the portal can do nothing a merchant could not do through the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.mandate import Mandate
from tianpay.domain.merchant import Merchant, MerchantKey
from tianpay.domain.payment import Payment, PaymentAttempt
from tianpay.domain.pos import Terminal
from tianpay.domain.refund import Refund, RefundKind
from tianpay.domain.statistics import Totals
from tianpay.ports.merchant_portal import MerchantMemberRow, PortalPaymentFilter
from tianpay.ports.outbox import EventRecord
from tianpay.ports.payments import PagePosition, Transition
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import statistics
from tianpay.services.merchants import KeyTools

PAGE_SIZE = 20
MAX_LIST = 200
MAX_EVENTS_PER_PAYMENT = 50


class InvalidSearch(DomainError):
    code = "invalid_search"


@dataclass(frozen=True, slots=True)
class PaymentSearchPage:
    payments: tuple[Payment, ...]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class PortalPaymentDetail:
    """Everything the detail page shows: the payment, its attempts, its trail, refunds and webhooks."""

    payment: Payment
    attempts: tuple[PaymentAttempt, ...]
    transitions: tuple[Transition, ...]
    refunds: tuple[Refund, ...]
    events: tuple[EventRecord, ...]


def search_payments(
    uow_factory: UnitOfWorkFactory,
    merchant_id: str,
    filters: PortalPaymentFilter,
    *,
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> PaymentSearchPage:
    """One page of the merchant's payments (newest first); ``after`` is the last id of the previous page."""
    if (
        filters.amount_min_minor is not None
        and filters.amount_max_minor is not None
        and filters.amount_min_minor > filters.amount_max_minor
    ):
        raise InvalidSearch("the smallest amount is larger than the largest", param="amount_min")
    with uow_factory() as uow:
        position = None
        if after:
            cursor = uow.payments.get(after, merchant_id=merchant_id)
            if cursor is None:
                raise InvalidSearch("the page to continue from is not one of yours", param="after")
            position = PagePosition(cursor.created_at, cursor.id)
        # One row more than shown tells whether a next page exists without counting.
        rows = uow.portal_queries.search_payments(merchant_id, filters, after=position, limit=limit + 1)
    shown = tuple(rows[:limit])
    return PaymentSearchPage(shown, shown[-1].id if len(rows) > limit and shown else None)


def payment_detail(uow_factory: UnitOfWorkFactory, merchant_id: str, payment_id: str) -> PortalPaymentDetail:
    """The merchant's payment with its whole story; another merchant's payment is NotFound."""
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, merchant_id=merchant_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", param="id")
        attempts = tuple(uow.payments.attempts_of(payment_id))
        transitions = tuple(uow.payments.transitions_of(payment_id))
        refunds = tuple(uow.refunds.of_payment(payment_id, kind=RefundKind.MERCHANT))
        subject_ids = [payment_id, *(refund.id for refund in refunds)]
        event_ids = uow.portal_queries.event_ids_about(merchant_id, subject_ids, limit=MAX_EVENTS_PER_PAYMENT)
        events = tuple(
            event for event in (uow.outbox.get_event(merchant_id, event_id) for event_id in event_ids) if event
        )
    return PortalPaymentDetail(payment, attempts, transitions, refunds, events)


def merchant_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> Merchant:
    with uow_factory() as uow:
        merchant = uow.merchants.get(merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
    return merchant


def keys_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> Sequence[MerchantKey]:
    with uow_factory() as uow:
        return tuple(uow.merchants.keys_of(merchant_id))


def revoke_key(uow_factory: UnitOfWorkFactory, tools: KeyTools, merchant_id: str, key_id: str) -> None:
    """Stops accepting one of the merchant's keys now (its expiry set to this moment).

    Revoking the last valid key is refused: the merchant would lock itself out of the API and the
    portal could not issue a public-key replacement for a key it never saw.
    """
    now = tools.clock.now()
    with uow_factory() as uow:
        keys = uow.merchants.keys_of(merchant_id)
        key = next((k for k in keys if k.key_id == key_id), None)
        if key is None:
            raise NotFound(f"no key {key_id}", param="key_id")
        if not key.is_valid_at(now):
            return
        if not any(k.is_valid_at(now) for k in keys if k.key_id != key_id):
            raise InvalidSearch("add another key before revoking the last one", param="key_id")
        uow.merchants.expire_key(key_id, now)
        uow.commit()


def rotate_webhook_secret(uow_factory: UnitOfWorkFactory, tools: KeyTools, merchant_id: str) -> str:
    """A new webhook signing secret, returned once; notifications sent from now on use it."""
    secret = tools.issuer.new_webhook_secret()
    with uow_factory() as uow:
        if not uow.merchants.set_webhook_secret(merchant_id, secret):
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        uow.commit()
    return secret


def members_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> Sequence[MerchantMemberRow]:
    with uow_factory() as uow:
        return tuple(uow.portal_queries.members_of(merchant_id, limit=MAX_LIST))


def mandates_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> Sequence[Mandate]:
    with uow_factory() as uow:
        return tuple(uow.portal_queries.mandates_of(merchant_id, limit=MAX_LIST))


def terminals_of(uow_factory: UnitOfWorkFactory, merchant_id: str) -> Sequence[Terminal]:
    with uow_factory() as uow:
        return tuple(uow.portal_queries.terminals_of(merchant_id))


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The dashboard's figures: exactly those ``GET /v1/statistics`` answers for the same days."""

    today: Totals
    last_30_days: Totals
    days: Mapping[date, Totals]
    by_method: Mapping[str, Totals]
    by_bank: Mapping[str, Totals]


def dashboard(read_uow_factory: UnitOfWorkFactory, merchant_id: str, today: date) -> Dashboard:
    """Today's and the last 30 Shanghai days' figures, per day, per method and per bank.

    Read from the daily aggregates the statistics job keeps (``services/statistics.py``), from the
    replica when one is configured: a page view never scans payments.
    """
    first, last = statistics.date_range(None, today, today)
    found = statistics.merchant_statistics(read_uow_factory, merchant_id, first, last)
    days = found.by_day()
    return Dashboard(days.get(today, Totals()), found.totals, days, found.by_method(), found.by_bank())
