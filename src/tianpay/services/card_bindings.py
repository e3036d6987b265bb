"""Card binding use cases: apply (the bank texts a code), confirm (the code → a bound card), unbind, list.

Each bank call happens with no unit of work open: the intent is committed first, the bank is
called, and its answer is written in a new unit of work (DESIGN.md §7). Card numbers, ID numbers
and phones are sealed by the PII cipher before they are stored and never logged; a binding keeps
the holder's elements only until it stops waiting for its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.card_binding import (
    SMS_CODE_LIFE,
    SMS_CODE_MAX_TRIES,
    BindingEvent,
    BindingNotPending,
    BindingStatus,
    CardAlreadyBound,
    CardBankUnsupported,
    CardBinding,
    InvalidCardHolder,
    bank_for_card,
    check_card_number,
    check_id_number,
    check_name,
    check_phone,
    check_sms_code,
)
from tianpay.domain.errors import DomainError, NotFound
from tianpay.domain.member import SealedPii
from tianpay.domain.notifications import iso_utc
from tianpay.ports.card_bindings import BindingTransition
from tianpay.ports.channels import (
    BindingConfirmation,
    BindingFailure,
    BindingRequest,
    CardHolder,
    Outcome,
    QuickPayDirectory,
)
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.members import PiiCipher
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services.members import member_needs_payment_password
from tianpay.services.pii import PiiKind, card_number_fingerprint, reveal, seal_card_number

log = structlog.stdlib.get_logger(__name__)

PII_CARD_HOLDER = "card_holder"
PII_BANK_TOKEN = "bank_token"  # noqa: S105 (the name of a PII kind, not a secret)


class BindingDeclined(DomainError):
    """The bank refused the binding; ``code`` is the platform's BindingFailure (card_frozen …)."""

    def __init__(self, failure: BindingFailure, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.code = failure.value
        self.failure = failure


class BankUnavailable(DomainError):
    """The bank did not answer clearly; nothing was decided, so the same request may be sent again."""

    code = "bank_unavailable"


class CardBankMismatch(InvalidCardHolder):
    code = "card_bank_mismatch"


@dataclass(frozen=True, slots=True)
class BindingApplication:
    """What a merchant backend (or the wallet) sends to bind a card; nothing of it is in a repr."""

    member_id: str
    card_number: str = field(repr=False)
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str = field(repr=False)
    bank: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmedBinding:
    binding: CardBinding
    # The member's first card: a payment password must be set before quick pay (the members service).
    needs_payment_password: bool


# ---- use cases --------------------------------------------------------------------------------------


def apply_binding(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    channels: QuickPayDirectory,
    pii: PiiCipher,
    application: BindingApplication,
    *,
    merchant_id: str | None,
) -> CardBinding:
    """Checks the four elements, records the binding and asks the card's bank to text a code.

    Raises the element's InvalidCardHolder, CardBankUnsupported, NotFound (a member the merchant
    did not register), CardAlreadyBound, BindingDeclined (the bank's reason) or BankUnavailable.
    """
    holder = _checked_holder(application)
    bank = _bank_of(holder.card_number, application.bank)
    try:
        channel = channels.quick_pay(bank)
    except NotFound:
        raise CardBankUnsupported(f"{bank} cards cannot be bound for quick pay here", param="card_number") from None
    card_fingerprint = card_number_fingerprint(pii, holder.card_number)
    with uow_factory() as uow:
        _member_of(uow, application.member_id, merchant_id)
        if uow.card_bindings.bound_with_fingerprint(application.member_id, card_fingerprint) is not None:
            raise CardAlreadyBound("this card is already bound for the member", param="card_number")
        now = clock.now()
        binding_id = ids.new(id_prefixes.CARD_BINDING)
        card = seal_card_number(pii, holder.card_number)
        binding = CardBinding(
            id=binding_id,
            member_id=application.member_id,
            merchant_id=merchant_id,
            bank=bank,
            card_masked=card.masked,
            card_fingerprint=card.fingerprint,
            status=BindingStatus.APPLIED,
            created_at=now,
            updated_at=now,
            sms_expires_at=now + SMS_CODE_LIFE,
            card_number_sealed=card.ciphertext,
            holder_sealed=pii.encrypt(PII_CARD_HOLDER, _holder_json(holder), binding_id),
        )
        uow.card_bindings.add(binding)
        _record(uow, binding, None, "applied", "four elements sent to the bank", now)
        uow.commit()
    answer = channel.apply_binding(
        BindingRequest(binding_id=binding.id, member_ref=binding.member_id, holder=holder, created_at=now)
    )
    log.info(
        "binding.applied", binding_id=binding.id, bank=bank, outcome=answer.outcome.value, bank_code=answer.bank_code
    )
    if answer.outcome is Outcome.SUCCEEDED:
        if answer.bank_token is None:
            return binding
        with uow_factory() as uow:
            current = _locked(uow, binding.id)
            sealed = pii.encrypt(PII_BANK_TOKEN, answer.bank_token, binding.id)
            updated = replace(current, bank_token_sealed=sealed, updated_at=clock.now())
            uow.card_bindings.update(updated, expected=current.status)
            uow.commit()
        return updated
    failure = answer.failure if answer.outcome is Outcome.FAILED else None
    _end(uow_factory, clock, binding.id, BindingEvent.REJECTED, failure.value if failure else "bank_unavailable",
         f"the bank refused: {answer.bank_code or answer.outcome.value}")
    if failure is not None:
        raise BindingDeclined(failure, _declined_message(failure), param=_param_of(failure))
    raise BankUnavailable(f"{bank} did not confirm the SMS was sent; apply again", param="bank")


def confirm_binding(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    channels: QuickPayDirectory,
    pii: PiiCipher,
    binding_id: str,
    sms_code: str,
    *,
    merchant_id: str | None,
    member_id: str | None = None,
) -> ConfirmedBinding:
    """Sends the payer's code to the bank; the binding is bound, stays waiting (a wrong code with
    tries left, an unclear answer) or ends (expired, too many tries, the bank's refusal).

    Confirming a bound binding again returns it (a merchant retrying after a timeout).
    """
    code = check_sms_code(sms_code)
    with uow_factory() as uow:
        binding = _locked(uow, binding_id)
        _check_scope(uow, binding, merchant_id, member_id)
        already_bound = binding.status is BindingStatus.BOUND
    if already_bound:
        return ConfirmedBinding(binding, member_needs_payment_password(uow_factory, binding.member_id))
    with uow_factory() as uow:
        binding = _locked(uow, binding_id)
        if binding.status is not BindingStatus.APPLIED:
            raise BindingNotPending(f"card binding {binding_id} is {binding.status.value}", param="id")
        now = clock.now()
        if binding.sms_expired_at(now):
            _move(uow, binding, BindingEvent.EXPIRED, now, "the SMS code expired", failure_code="sms_code_expired")
            uow.commit()
            raise BindingDeclined(
                BindingFailure.SMS_CODE_EXPIRED, "the SMS code expired; apply again", param="sms_code"
            )
        if binding.sms_tries >= SMS_CODE_MAX_TRIES:
            _move(uow, binding, BindingEvent.REJECTED, now, "too many SMS code tries",
                  failure_code="sms_code_attempts_exceeded")
            uow.commit()
            raise BindingDeclined(BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED, "too many wrong SMS codes; apply again",
                                  param="sms_code")
        # The try is counted before the bank sees it, so concurrent confirms cannot exceed the limit.
        counted = replace(binding, sms_tries=binding.sms_tries + 1, updated_at=now)
        if not uow.card_bindings.update(counted, expected=BindingStatus.APPLIED):
            raise BindingNotPending(f"card binding {binding_id} changed; read it again", param="id")
        uow.commit()
    confirmation = BindingConfirmation(
        binding_id=binding.id,
        member_ref=binding.member_id,
        holder=_open_holder(pii, counted),
        applied_at=binding.created_at,
        sms_code=code,
        bank_token=_open_token(pii, counted),
    )
    answer = channels.quick_pay(binding.bank).confirm_binding(confirmation)
    log.info("binding.confirm_answer", binding_id=binding.id, outcome=answer.outcome.value, bank_code=answer.bank_code)
    if answer.outcome is Outcome.SUCCEEDED and answer.card_token is not None:
        return _bind(uow_factory, clock, pii, binding.id, answer.card_token)
    if answer.outcome is not Outcome.FAILED:
        raise BankUnavailable(f"{binding.bank} did not answer clearly; send the same code again", param="sms_code")
    failure = _refined(answer.failure or BindingFailure.BANK_DECLINED, counted, clock.now())
    if failure is BindingFailure.SMS_CODE_INVALID:
        tries_left = counted.sms_tries_left
        raise BindingDeclined(failure, f"the SMS code is wrong; {tries_left} tries left", param="sms_code")
    event = BindingEvent.EXPIRED if failure is BindingFailure.SMS_CODE_EXPIRED else BindingEvent.REJECTED
    _end(uow_factory, clock, binding.id, event, failure.value, f"the bank refused: {answer.bank_code}")
    raise BindingDeclined(failure, _declined_message(failure), param=_param_of(failure))


def unbind(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    channels: QuickPayDirectory,
    pii: PiiCipher,
    binding_id: str,
    *,
    merchant_id: str | None,
    member_id: str | None = None,
) -> CardBinding:
    """Unbinds a bound card: the bank is told, and the card is never charged again whatever it says.

    The platform alone holds the token, so forgetting it locally is what stops charges; the bank's
    answer is recorded in the transition's cause. Unbinding an unbound card returns it unchanged.
    """
    with uow_factory() as uow:
        binding = _get(uow, binding_id)
        _check_scope(uow, binding, merchant_id, member_id)
    if binding.status is BindingStatus.UNBOUND:
        return binding
    if binding.status is not BindingStatus.BOUND:
        raise BindingNotPending(f"card binding {binding_id} is {binding.status.value}, not bound", param="card_id")
    token = _open_token(pii, binding)
    told = "the bank holds no token"
    if token is not None:
        result = channels.quick_pay(binding.bank).unbind(token, binding.member_id)
        told = f"the bank answered {result.outcome.value} {result.bank_code or ''}".rstrip()
    with uow_factory() as uow:
        current = _locked(uow, binding_id)
        if current.status is BindingStatus.UNBOUND:
            return current
        now = clock.now()
        moved = _move(uow, current, BindingEvent.UNBOUND, now, f"unbound; {told}", clear_token=True)
        uow.commit()
    log.info("binding.unbound", binding_id=binding_id, bank=binding.bank, bank_told=told)
    return moved


def cards_of(
    uow_factory: UnitOfWorkFactory, member_id: str, *, merchant_id: str | None
) -> list[CardBinding]:
    """The member's bound cards (what a payer may pick at the cashier or a merchant may charge)."""
    with uow_factory() as uow:
        _member_of(uow, member_id, merchant_id)
        return list(uow.card_bindings.of_member(member_id, (BindingStatus.BOUND,)))


def get_binding(
    uow_factory: UnitOfWorkFactory, binding_id: str, *, merchant_id: str | None, member_id: str | None = None
) -> CardBinding:
    with uow_factory() as uow:
        binding = _get(uow, binding_id)
        _check_scope(uow, binding, merchant_id, member_id)
        return binding


def open_card_token(pii: PiiCipher, binding: CardBinding) -> str:
    """The bound card's token for a payment (quick pay); raises CardNotBound when there is none."""
    from tianpay.domain.card_binding import CardNotBound

    token = _open_token(pii, binding) if binding.status is BindingStatus.BOUND else None
    if token is None:
        raise CardNotBound(f"card {binding.id} is not bound", param="card_id")
    return token


def binding_view(binding: CardBinding) -> dict[str, object]:
    """The binding's public JSON: masked card only, never a token or an element."""
    return {
        "id": binding.id,
        "object": "card",
        "member_id": binding.member_id,
        "bank": binding.bank,
        "card_number_masked": binding.card_masked,
        "status": binding.status.value,
        "failure_code": binding.failure_code,
        "sms_expires_at": iso_utc(binding.sms_expires_at) if binding.status is BindingStatus.APPLIED else None,
        "created_at": iso_utc(binding.created_at),
        "bound_at": iso_utc(binding.bound_at) if binding.bound_at else None,
    }


# ---- helpers ------------------------------------------------------------------------------------------


def _checked_holder(application: BindingApplication) -> CardHolder:
    return CardHolder(
        card_number=check_card_number(application.card_number),
        name=check_name(application.name),
        id_number=check_id_number(application.id_number),
        phone=check_phone(application.phone),
    )


def _bank_of(card_number: str, named: str | None) -> str:
    derived = bank_for_card(card_number)
    if derived is None:
        raise CardBankUnsupported("the card's bank is not one this platform works with", param="card_number")
    if named is not None and named != derived:
        raise CardBankMismatch(f"the card is issued by {derived}, not {named}", param="bank")
    return derived


def _member_of(uow: UnitOfWork, member_id: str, merchant_id: str | None) -> None:
    member = uow.members.get(member_id)
    # A merchant sees only the members it registered; anyone else's is "not found", not "forbidden".
    if member is None or (merchant_id is not None and not uow.members.links_of(member_id, merchant_id)):
        raise NotFound(f"no member {member_id}", param="member_id")
    if not member.is_active:
        raise NotFound(f"member {member_id} is not active", param="member_id")


def _check_scope(uow: UnitOfWork, binding: CardBinding, merchant_id: str | None, member_id: str | None) -> None:
    if member_id is not None and binding.member_id != member_id:
        raise NotFound(f"no card binding {binding.id}", param="id")
    if merchant_id is not None and not uow.members.links_of(binding.member_id, merchant_id):
        raise NotFound(f"no card binding {binding.id}", param="id")


def _get(uow: UnitOfWork, binding_id: str) -> CardBinding:
    binding = uow.card_bindings.get(binding_id)
    if binding is None:
        raise NotFound(f"no card binding {binding_id}", param="id")
    return binding


def _locked(uow: UnitOfWork, binding_id: str) -> CardBinding:
    binding = uow.card_bindings.get_for_update(binding_id)
    if binding is None:
        raise NotFound(f"no card binding {binding_id}", param="id")
    return binding


def _bind(
    uow_factory: UnitOfWorkFactory, clock: Clock, pii: PiiCipher, binding_id: str, token: str
) -> ConfirmedBinding:
    with uow_factory() as uow:
        current = _locked(uow, binding_id)
        if current.status is BindingStatus.BOUND:
            bound = current
        else:
            sealed = pii.encrypt(PII_BANK_TOKEN, token, binding_id)
            bound = _move(uow, current, BindingEvent.CONFIRMED, clock.now(), "the bank bound the card",
                          token_sealed=sealed)
            uow.commit()
            log.info("binding.bound", binding_id=binding_id, bank=bound.bank)
    return ConfirmedBinding(bound, member_needs_payment_password(uow_factory, bound.member_id))


def _end(
    uow_factory: UnitOfWorkFactory, clock: Clock, binding_id: str, event: BindingEvent, failure_code: str, cause: str
) -> None:
    with uow_factory() as uow:
        current = _locked(uow, binding_id)
        if current.status is not BindingStatus.APPLIED:
            return
        _move(uow, current, event, clock.now(), cause, failure_code=failure_code)
        uow.commit()


def _move(
    uow: UnitOfWork,
    binding: CardBinding,
    event: BindingEvent,
    now: datetime,
    cause: str,
    *,
    failure_code: str | None = None,
    token_sealed: str | None = None,
    clear_token: bool = False,
) -> CardBinding:
    moved = binding.moved_to(event, now)
    if event is BindingEvent.CONFIRMED:
        moved = replace(moved, bank_token_sealed=token_sealed, bound_at=now)
    elif event is BindingEvent.UNBOUND:
        moved = replace(moved, unbound_at=now)
    if clear_token or moved.status in (BindingStatus.FAILED, BindingStatus.EXPIRED):
        moved = replace(moved, bank_token_sealed=None)
    if failure_code is not None:
        moved = replace(moved, failure_code=failure_code)
    if not uow.card_bindings.update(moved, expected=binding.status):
        raise BindingNotPending(f"card binding {binding.id} changed; read it again", param="id")
    _record(uow, moved, binding.status.value, event.value, cause, now)
    return moved


def _record(
    uow: UnitOfWork, binding: CardBinding, from_status: str | None, event: str, cause: str, now: datetime
) -> None:
    uow.card_bindings.record_transition(
        BindingTransition(binding.id, from_status, binding.status.value, event, cause, now)
    )


def _refined(failure: BindingFailure, binding: CardBinding, now: datetime) -> BindingFailure:
    """The bank's "wrong or expired" (BANKS.md: HBB 63, JHB 1063) told apart by what we know."""
    if failure is not BindingFailure.SMS_CODE_INVALID:
        return failure
    if binding.sms_expired_at(now):
        return BindingFailure.SMS_CODE_EXPIRED
    if binding.sms_tries >= SMS_CODE_MAX_TRIES:
        return BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED
    return failure


def _holder_json(holder: CardHolder) -> str:
    return json.dumps({"name": holder.name, "id_number": holder.id_number, "phone": holder.phone}, ensure_ascii=False)


def _open_holder(pii: PiiCipher, binding: CardBinding) -> CardHolder:
    if binding.holder_sealed is None:
        raise BindingNotPending(f"card binding {binding.id} no longer holds the card's elements", param="id")
    elements = json.loads(pii.decrypt(PII_CARD_HOLDER, binding.holder_sealed, binding.id))
    card = SealedPii(binding.card_number_sealed, binding.card_fingerprint, binding.card_masked)
    card_number = reveal(pii, PiiKind.CARD_NUMBER, card)
    return CardHolder(card_number, elements["name"], elements["id_number"], elements["phone"])


def _open_token(pii: PiiCipher, binding: CardBinding) -> str | None:
    if binding.bank_token_sealed is None:
        return None
    return pii.decrypt(PII_BANK_TOKEN, binding.bank_token_sealed, binding.id)


_MESSAGES = {
    BindingFailure.CARD_ELEMENTS_MISMATCH: "the name, ID number or phone does not match the bank's record",
    BindingFailure.CARD_FROZEN: "the card is frozen at its bank",
    BindingFailure.CARD_INVALID: "the bank does not accept this card",
    BindingFailure.SMS_CODE_INVALID: "the SMS code is wrong",
    BindingFailure.SMS_CODE_EXPIRED: "the SMS code expired; apply again",
    BindingFailure.SMS_CODE_ATTEMPTS_EXCEEDED: "too many wrong SMS codes; apply again",
    BindingFailure.BANK_DECLINED: "the bank declined to bind the card",
}
_PARAMS = {
    BindingFailure.CARD_ELEMENTS_MISMATCH: None,
    BindingFailure.CARD_FROZEN: "card_number",
    BindingFailure.CARD_INVALID: "card_number",
}


def _declined_message(failure: BindingFailure) -> str:
    return _MESSAGES[failure]


def _param_of(failure: BindingFailure) -> str | None:
    return _PARAMS.get(failure, "sms_code" if failure.value.startswith("sms_") else None)
