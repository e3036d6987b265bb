"""Direct debit (代扣): a merchant registers a mandate for a member's card, the payer confirms it with
the bank's SMS code, and the merchant then debits within its limits with no payer step.

The platform enforces the mandate before any bank is asked (status, validity, per debit, per
Beijing month over debits that may have moved money), under a row lock on the mandate, so a debit
on a revoked or exhausted mandate never reaches the bank. The bank's own check (JHB ``1071``) is
the second line. Each debit is a ``direct_debit`` payment recorded through ``services.payments``
(attempts, ledger entry, fee, webhooks); an unclear answer is left to the payment re-query job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.card_binding import BIN_BANKS, check_card_number, check_sms_code
from tianpay.domain.errors import Conflict, DomainError, NotFound
from tianpay.domain.mandate import (
    Mandate,
    MandateEvent,
    MandateStatus,
    business_date,
    check_debit,
    check_terms,
    debit_period,
)
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType
from tianpay.domain.payment import Payment, PaymentAttempt, PaymentMethod, PaymentRequest, PaymentStatus
from tianpay.ports.channels import CardHolder, DebitOrder, DirectDebitDirectory, MandateApplication, Outcome
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.mandates import MandateDebit
from tianpay.ports.members import PiiCipher
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services import payments as payment_service
from tianpay.services.gateway import GatewaySettings, apply_payment_result
from tianpay.services.mandate_records import mandate_view as mandate_view
from tianpay.services.pii import seal_card_number

log = structlog.stdlib.get_logger(__name__)

PII_MANDATE_BANK_REF = "mandate_bank_ref"
EXPIRY_BATCH_SIZE = 200


class MandateDeclined(DomainError):
    """The bank refused to set up or confirm the mandate (elements mismatch, wrong SMS code …)."""

    code = "mandate_declined"


class MandateBankUnavailable(DomainError):
    code = "bank_unavailable"
    kind = "api_error"


class MandateBankUnsupported(DomainError):
    code = "mandate_bank_unsupported"


@dataclass(frozen=True, slots=True)
class MandateRequest:
    """What the merchant sends; the card elements never appear in a repr."""

    member_id: str
    merchant_mandate_no: str
    max_per_debit: Money
    max_per_month: Money
    valid_until: date
    purpose: str
    card_number: str = field(repr=False)
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str = field(repr=False)


def create_mandate(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, request: MandateRequest, *, merchant_id: str, settings: GatewaySettings | None = None,
) -> Mandate:
    """Records the mandate as ``applied`` and asks the card's bank to text the payer a code.

    With ``settings`` the bank is given our notify URL, where it reports a revocation the payer
    makes at the bank (JHB ``mandate.revoke.notify``); without, the bank has nowhere to tell us.
    """
    now = clock.now()
    check_terms(request.max_per_debit, request.max_per_month, request.valid_until, request.purpose, now)
    card_number = check_card_number(request.card_number)
    bank = BIN_BANKS.get(card_number[:6], "")
    try:
        channel = channels.direct_debit(bank)
    except NotFound:
        raise MandateBankUnsupported(
            f"{bank or 'this'} card offers no direct debit here", param="card_number"
        ) from None
    with uow_factory() as uow:
        if uow.members.get(request.member_id) is None:
            raise NotFound(f"no member {request.member_id}", param="member_id")
        mandate = Mandate(
            id=ids.new(id_prefixes.MANDATE), merchant_id=merchant_id, member_id=request.member_id,
            merchant_mandate_no=request.merchant_mandate_no, bank=bank,
            card_masked=seal_card_number(pii, card_number).masked, max_per_debit=request.max_per_debit,
            max_per_month=request.max_per_month, valid_until=request.valid_until, purpose=request.purpose,
            status=MandateStatus.APPLIED, created_at=now, updated_at=now,
        )
        uow.mandates.add(mandate)
        uow.commit()
    holder = CardHolder(card_number, request.name, request.id_number, request.phone)
    answer = channel.apply_mandate(MandateApplication(
        mandate.id, request.member_id, holder, request.max_per_debit, request.max_per_month,
        request.valid_until, request.purpose, notify_url=settings.notify_url(bank) if settings is not None else "",
    ))
    log.info("mandate.applied", mandate_id=mandate.id, bank=bank, outcome=answer.outcome.value,
             bank_code=answer.bank_code)
    if answer.outcome is Outcome.SUCCEEDED and answer.bank_ref:
        sealed = pii.encrypt(PII_MANDATE_BANK_REF, answer.bank_ref, mandate.id)
        return _save(uow_factory, mandate.id, bank_ref_sealed=sealed)
    failure_code = answer.bank_code or "bank_unavailable"
    failed = _move(uow_factory, clock, mandate.id, MandateEvent.REJECTED, failure_code=failure_code)
    if answer.outcome is Outcome.FAILED:
        raise MandateDeclined(f"the bank refused the mandate: {answer.bank_message or answer.bank_code}")
    raise MandateBankUnavailable(f"{failed.bank} did not confirm the SMS was sent; apply again")


def confirm_mandate(
    uow_factory: UnitOfWorkFactory, clock: Clock, channels: DirectDebitDirectory, pii: PiiCipher,
    mandate_id: str, sms_code: str, *, merchant_id: str,
) -> Mandate:
    """Sends the payer's code to the bank; on success the mandate is ``active`` (webhook ``mandate.active``)."""
    code = check_sms_code(sms_code)
    mandate = get_mandate(uow_factory, mandate_id, merchant_id=merchant_id)
    if mandate.status is MandateStatus.ACTIVE:
        return mandate
    if mandate.status is not MandateStatus.APPLIED or mandate.bank_ref_sealed is None:
        raise DomainError(f"mandate {mandate_id} is {mandate.status.value}", param="id")
    token = pii.decrypt(PII_MANDATE_BANK_REF, mandate.bank_ref_sealed, mandate.id)
    answer = channels.direct_debit(mandate.bank).confirm_mandate(token, code)
    log.info("mandate.confirmed", mandate_id=mandate.id, outcome=answer.outcome.value, bank_code=answer.bank_code)
    if answer.outcome is Outcome.SUCCEEDED and answer.bank_ref:
        return _move(
            uow_factory, clock, mandate.id, MandateEvent.CONFIRMED, event_type=EventType.MANDATE_ACTIVE,
            bank_ref_sealed=pii.encrypt(PII_MANDATE_BANK_REF, answer.bank_ref, mandate.id),
        )
    if answer.outcome is Outcome.FAILED:
        # A wrong code leaves the mandate waiting: the bank allows five tries (BANKS.md).
        raise MandateDeclined(f"the bank refused the code: {answer.bank_message or answer.bank_code}", param="sms_code")
    raise MandateBankUnavailable("the bank did not answer; confirm again")


def revoke_mandate(
    uow_factory: UnitOfWorkFactory, clock: Clock, channels: DirectDebitDirectory, pii: PiiCipher,
    mandate_id: str, *, merchant_id: str | None, member_id: str | None = None, cause: str = "revoked by the merchant",
) -> Mandate:
    """Revokes on the platform first (no debit passes from now on), then tells the bank.

    The merchant (``merchant_id``) or the payer in the wallet (``member_id``) may revoke; another
    merchant's or member's mandate is NotFound, so its existence is not revealed.
    """
    mandate = get_mandate(uow_factory, mandate_id, merchant_id=merchant_id)
    if member_id is not None and mandate.member_id != member_id:
        raise NotFound(f"no mandate {mandate_id}", param="id")
    if mandate.status is MandateStatus.REVOKED:
        return mandate
    revoked = _move(uow_factory, clock, mandate.id, MandateEvent.REVOKED, event_type=EventType.MANDATE_REVOKED)
    if revoked.bank_ref_sealed is not None:
        bank_mandate_no = pii.decrypt(PII_MANDATE_BANK_REF, revoked.bank_ref_sealed, revoked.id)
        answer = channels.direct_debit(revoked.bank).revoke_mandate(bank_mandate_no)
        # The platform refuses debits on its own record, so a bank that missed the revocation
        # cannot be used against the payer; the answer is logged for operators.
        log.info("mandate.revoked_at_bank", mandate_id=mandate.id, cause=cause, outcome=answer.outcome.value,
                 bank_code=answer.bank_code)
    return revoked


def debit(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, channels: DirectDebitDirectory,
    pii: PiiCipher, settings: GatewaySettings, *, merchant_id: str, mandate_id: str, out_trade_no: str,
    amount: Money, subject: str, notify_url: str | None = None,
) -> payment_service.CreatedPayment:
    """Debits the mandate's card, idempotently on ``out_trade_no``; refused before the bank when the
    mandate is not active or the amount is outside its limits.

    A repeat of the request returns the first payment as it is now, with one exception: a payment
    still ``created`` with no attempt, whose first call died between creating it and asking the bank
    (a killed worker or server). The repeat carries that one on to the bank, exactly once however
    many repeats race (see ``_start``), so neither a merchant's retry nor the worker's stale-claim
    sweep loses the debit. A payment that has an attempt is never sent again: an unclear attempt is
    the re-query job's.
    """
    mandate = get_mandate(uow_factory, mandate_id, merchant_id=merchant_id)
    now = clock.now()
    if not _is_taken(uow_factory, merchant_id, out_trade_no):
        # A new debit refused on the mandate's terms stores nothing, so the merchant may send the same
        # number again once the mandate allows it. A repeat skips this early check: its own debit
        # already counts against the month, and its payment must be returned, not refused.
        with uow_factory() as uow:
            _check_within(uow, mandate, amount, now)
    request = PaymentRequest(
        merchant_id=merchant_id, out_trade_no=out_trade_no, amount=amount, method=PaymentMethod.DIRECT_DEBIT,
        subject=subject, notify_url=notify_url, metadata={"mandate_id": mandate.id},
    )
    created = payment_service.create_payment(uow_factory, clock, ids, request)
    if created.payment.status is not PaymentStatus.CREATED:
        return created
    payment_id = created.payment.id
    started = _start(uow_factory, clock, ids, mandate.id, payment_id, amount)
    if started is None:
        return _current(uow_factory, merchant_id, payment_id, replayed=True)
    locked, attempt = started
    if created.replayed:
        log.info("mandate.debit_resumed", mandate_id=mandate.id, payment_id=payment_id, attempt_id=attempt.id)
    assert locked.bank_ref_sealed is not None
    order = DebitOrder(
        attempt_id=attempt.id, amount=amount, subject=subject, created_at=attempt.created_at,
        notify_url=settings.notify_url(mandate.bank),
        bank_mandate_no=pii.decrypt(PII_MANDATE_BANK_REF, locked.bank_ref_sealed, mandate.id),
    )
    try:
        result = channels.direct_debit(mandate.bank).debit(order)
    except Exception:
        payment_service.record_attempt_unknown(uow_factory, clock, payment_id, attempt.id,
                                               cause="the direct-debit call broke off")
        raise
    log.info("mandate.debited", mandate_id=mandate.id, payment_id=payment_id, outcome=result.outcome.value,
             bank_code=result.bank_code)
    if result.outcome is Outcome.NOT_SUBMITTED:
        payment_service.record_attempt_failed(uow_factory, clock, payment_id, attempt.id,
                                              failure_code=result.bank_code or result.outcome.value,
                                              failure_message=result.bank_message)
    else:
        apply_payment_result(uow_factory, clock, ids, attempt.id, result, source=f"{mandate.bank} direct debit")
    return _current(uow_factory, merchant_id, payment_id, replayed=created.replayed)


def _start(
    uow_factory: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, mandate_id: str, payment_id: str, amount: Money,
) -> tuple[Mandate, PaymentAttempt] | None:
    """Checks the mandate, records the debit against it and starts the payment's one attempt, in one
    unit of work under the mandate's row lock; returns None when there is nothing to start.

    The lock serialises every debit of the mandate: two debits racing cannot both fit the last of a
    limit, and two calls carrying on the same payment cannot both start it (the second finds the
    first one's attempt). Committing the debit record and the attempt together leaves no state in
    between for a crash to strand. The attempt's id is the request number the bank sees, so the bank
    is asked under one number only. A payment past its expiry is left to the expiry job, which
    closes it and sends ``payment.closed``.

    Older code committed the debit record before the attempt, so a crash between the two left a
    payment ``created`` with its debit already recorded. That record is this payment's own and is
    reused as it stands (same period, not counted twice against the limit); another payment's debit
    in the same month still counts in full, so the record of one payment never makes room for a
    second debit.
    """
    with uow_factory() as uow:
        locked = uow.mandates.get_for_update(mandate_id)
        assert locked is not None
        payment = payment_service.unstarted_payment(uow, payment_id)
        now = clock.now()
        if payment is None or payment.is_expired_at(now):
            return None
        recorded = uow.mandates.debit_of(payment_id)
        if recorded is not None and (recorded.mandate_id, recorded.amount_minor) != (mandate_id, amount.minor):
            # The payment's fingerprint fixes its mandate and amount, so this record cannot be reached
            # through the API; it is left for an operator rather than debited on a guess.
            raise Conflict(f"payment {payment_id} is recorded against another debit", param="out_trade_no")
        period = debit_period(now) if recorded is None else recorded.period
        try:
            _check_within(uow, locked, amount, now, period=period, excluding_payment_id=payment_id)
        except DomainError as refused:
            payment_service.close_unstarted(uow, clock, payment, cause=f"refused before the bank: {refused.code}")
            uow.commit()
            raise
        if recorded is None:
            uow.mandates.add_debit(MandateDebit(payment_id, mandate_id, period, amount.minor, now))
        else:
            log.info("mandate.debit_record_reused", mandate_id=mandate_id, payment_id=payment_id,
                     period=recorded.period)
        attempt = payment_service.add_attempt(uow, clock, ids, payment, channel=f"{locked.bank}:direct_debit",
                                              bank=locked.bank)
        uow.commit()
    return locked, attempt


def _is_taken(uow_factory: UnitOfWorkFactory, merchant_id: str, out_trade_no: str) -> bool:
    """Whether the merchant already created a payment under ``out_trade_no`` (this is a repeat).

    Asked of the payment itself rather than of its idempotency record, which housekeeping deletes
    after the retention: a repeat that late must still skip the mandate's checks and reach the 409
    that names its payment, not be refused as if it were a new debit the mandate no longer allows.
    """
    with uow_factory() as uow:
        return uow.payments.id_of_out_trade_no(merchant_id, out_trade_no) is not None


def _current(
    uow_factory: UnitOfWorkFactory, merchant_id: str, payment_id: str, *, replayed: bool
) -> payment_service.CreatedPayment:
    with uow_factory() as uow:
        current: Payment | None = uow.payments.get(payment_id, merchant_id=merchant_id)
    assert current is not None
    return payment_service.CreatedPayment(current, replayed=replayed)


def expire_mandates(uow_factory: UnitOfWorkFactory, clock: Clock, now: datetime) -> int:
    """The worker job: active mandates whose validity has passed become ``expired``."""
    with uow_factory() as uow:
        due = uow.mandates.due_for_expiry(business_date(now).isoformat(), limit=EXPIRY_BATCH_SIZE)
    for mandate in due:
        _move(uow_factory, clock, mandate.id, MandateEvent.EXPIRED)
    return len(due)


@dataclass(frozen=True, slots=True)
class MemberMandate:
    """A mandate as its payer sees it in the wallet: with the merchant's name."""

    mandate: Mandate
    merchant_name: str


def mandates_of_member(uow_factory: UnitOfWorkFactory, member_id: str) -> list[MemberMandate]:
    """The member's mandates at every merchant, newest first (the wallet's "my mandates")."""
    with uow_factory() as uow:
        found = uow.mandates.of_member(member_id)
        names: dict[str, str] = {}
        for mandate in found:
            if mandate.merchant_id not in names:
                merchant = uow.merchants.get(mandate.merchant_id)
                names[mandate.merchant_id] = merchant.name if merchant is not None else mandate.merchant_id
    return [MemberMandate(mandate, names[mandate.merchant_id]) for mandate in found]


def get_mandate(uow_factory: UnitOfWorkFactory, mandate_id: str, *, merchant_id: str | None) -> Mandate:
    with uow_factory() as uow:
        mandate = uow.mandates.get(mandate_id, merchant_id=merchant_id)
    if mandate is None:
        raise NotFound(f"no mandate {mandate_id}", param="id")
    return mandate


def _check_within(
    uow: UnitOfWork, mandate: Mandate, amount: Money, now: datetime, *, period: str | None = None,
    excluding_payment_id: str | None = None,
) -> None:
    """Refuses the debit unless the mandate allows ``amount`` in ``period`` (this month by default),
    over the period's other debits (all of them but ``excluding_payment_id``'s own)."""
    month_total = Money.cny(uow.mandates.month_total_minor(
        mandate.id, period or debit_period(now), excluding_payment_id=excluding_payment_id,
    ))
    check_debit(mandate, amount, month_total, now)


def _save(uow_factory: UnitOfWorkFactory, mandate_id: str, *, bank_ref_sealed: str) -> Mandate:
    with uow_factory() as uow:
        current = uow.mandates.get_for_update(mandate_id)
        assert current is not None
        updated = replace(current, bank_ref_sealed=bank_ref_sealed)
        uow.mandates.update(updated, expected=current.status)
        uow.commit()
    return updated


def _move(
    uow_factory: UnitOfWorkFactory, clock: Clock, mandate_id: str, event: MandateEvent, *,
    event_type: EventType | None = None, **changes: object,
) -> Mandate:
    with uow_factory() as uow:
        current = uow.mandates.get_for_update(mandate_id)
        assert current is not None
        moved = current.moved_to(event, clock.now(), **changes)
        if not uow.mandates.update(moved, expected=current.status):
            raise DomainError(f"mandate {mandate_id} changed meanwhile; try again", param="id")
        if event_type is not None:
            uow.outbox.add_event(moved.merchant_id, event_type, mandate_view(moved))
        uow.commit()
    return moved
