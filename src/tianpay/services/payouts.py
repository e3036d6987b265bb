"""Payout use cases (代付): a merchant's payout, a member's withdrawal, batching, the banks' answers.

Money is reserved when a payout is created; one at or above its review threshold waits in
``pending_review`` until an operator approves it (then it is ``created``) or rejects it (then it fails
and the money goes back). The dispatch job batches created payouts per bank and commits the batch
before sending it (DESIGN.md §7). Unclear answers are resolved by querying the same
batch, never by sending again; a failure or a bounce gives the money back to where it came from.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.alerts import AlertKind, AlertSeverity, OperatorAlert
from tianpay.domain.card_binding import BindingStatus
from tianpay.domain.errors import Conflict, DomainError, IllegalTransition, NotFound
from tianpay.domain.ledger import JournalEntry
from tianpay.domain.member import SealedPii
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.domain.payment import AmountMismatch, check_amount
from tianpay.domain.payout import (
    REJECTED_IN_REVIEW,
    REJECTED_IN_REVIEW_MESSAGE,
    TRANSITIONS,
    InvalidPayeeAccount,
    PayeeAccount,
    Payout,
    PayoutBatchRecord,
    PayoutEvent,
    PayoutRequest,
    PayoutSource,
    PayoutStatus,
    check_request,
    initial_status,
    mask_account_no,
    sending_bank,
)
from tianpay.domain.posting_rules import payout_failed, payout_returned, payout_submitted, payout_succeeded
from tianpay.domain.reconciliation import AfterClose, against_suspense
from tianpay.domain.settlement import Payee, SettlementStatus, payee_changed
from tianpay.domain.wallet import FORM_KEY_OWNER, member_form_key
from tianpay.ports.channels import ChannelResult, InvalidNotification, NotificationAck, Outcome
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.members import PiiCipher
from tianpay.ports.payout_records import PayoutTransition
from tianpay.ports.payouts import (
    KIND_PAYOUT,
    KIND_PAYOUT_RETURNED,
    PayoutBatch,
    PayoutDirectory,
    PayoutOrder,
)
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services import routing
from tianpay.services.card_bindings import cards_of
from tianpay.services.idempotency import run_idempotent
from tianpay.services.member_tools import MemberTools
from tianpay.services.members import verify_payment_password
from tianpay.services.pii import PiiKind, reveal
from tianpay.services.refunds import RequeryPolicy
from tianpay.services.settlement import mark_settlement_paid, mark_settlement_payout_failed, settlement_account
from tianpay.services.suspense_follow_ups import (
    ClosedFollowUp,
    closed_follow_up,
    open_recorded_after_close,
    repeats_undone_success,
)

log = structlog.stdlib.get_logger(__name__)

IDEMPOTENCY_SCOPE: Final = "payouts"
# A member's withdrawal forms, keyed under the wallet's own merchant (domain/wallet.py FORM_KEY_OWNER).
WITHDRAWAL_IDEMPOTENCY_SCOPE: Final = "wallet_withdrawals"
# The PII kind a payee account number is sealed and fingerprinted under (not a card: any account).
PII_BANK_ACCOUNT: Final = "bank_account"
DISPATCH_BATCH_SIZE: Final = 200
REQUERY_BATCH_SIZE: Final = 20
SETTLEMENT_BATCH_SIZE: Final = 50
LIST_LIMIT_MAX: Final = 100
# What a member's withdrawal says to the bank and on the payee's statement.
WITHDRAWAL_PURPOSE: Final = "wallet withdrawal"

# FAILED and NOT_SUBMITTED both mean that no money moved: the payout fails and the money goes back.
_EVENT_BY_OUTCOME: Final[Mapping[Outcome, PayoutEvent]] = {
    Outcome.SUCCEEDED: PayoutEvent.SUCCEEDED,
    Outcome.FAILED: PayoutEvent.FAILED,
    Outcome.NOT_SUBMITTED: PayoutEvent.FAILED,
    Outcome.PENDING: PayoutEvent.PENDING,
    Outcome.UNKNOWN: PayoutEvent.UNKNOWN,
}
_FINAL_EVENTS: Final = (PayoutEvent.SUCCEEDED, PayoutEvent.FAILED, PayoutEvent.RETURNED)


@dataclass(frozen=True, slots=True)
class CreatedPayout:
    """The payout a create call names: new, or the first one when the request is a repeat."""

    payout: Payout
    replayed: bool


@dataclass(frozen=True, slots=True)
class _SealedPayee:
    """A payee account with its number sealed under PII_BANK_ACCOUNT, as a payout row keeps it."""

    bank: str
    account_name: str
    account_sealed: str
    account_fingerprint: str
    account_masked: str


# ---- merchant payouts -------------------------------------------------------------------------------


def create_payout(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    merchant_id: str,
    request: PayoutRequest,
    *,
    settlement_account: PayeeAccount | None = None,
) -> CreatedPayout:
    """Pays ``request.amount`` of the merchant's available balance to a bank account; returns the payout.

    The payout is ``created`` with its money reserved (the submit entry); the worker batches and
    sends it. At or above the merchant's review threshold it is ``pending_review`` instead, its money
    reserved the same way, until an operator decides (``review_payout``). The same out_payout_no with
    the same request returns the first payout (as it is now); with a different request it raises
    IdempotencyConflict. A balance that does not cover the amount raises InsufficientBalance from the
    ledger's conditional write, and nothing is stored; so does a payee's bank, or the bank that would pay
    it, that an operator switched off (BankSwitchedOff, read in the creating unit of work; a repeat of a
    payout created before the switch still returns it).
    ``settlement_account`` is the merchant's settlement account, needed when ``request.account`` is None.
    """
    check_request(request)
    account_fingerprint = None
    if request.account is not None:
        account_fingerprint = cipher.fingerprint(PII_BANK_ACCOUNT, request.account.account_no)
    created: list[Payout] = []

    def insert(uow: UnitOfWork) -> tuple[int, Mapping[str, object]]:
        payee = _sealed_payee(cipher, request.account or settlement_account)
        now = clock.now()
        # Read in the unit of work that creates the payout: a threshold changed a moment ago applies.
        threshold_minor = uow.payouts.review_threshold(merchant_id)
        payout = Payout(
            id=ids.new(id_prefixes.PAYOUT),
            source=PayoutSource.MERCHANT,
            merchant_id=merchant_id,
            member_id=None,
            out_payout_no=request.out_payout_no,
            amount=request.amount,
            purpose=request.purpose,
            payee_bank=payee.bank,
            account_name=payee.account_name,
            account_masked=payee.account_masked,
            account_fingerprint=payee.account_fingerprint,
            account_sealed=payee.account_sealed,
            card_id=None,
            bank=sending_bank(payee.bank, directory.payout_banks(), switched_off=routing.switched_off_in(uow)),
            status=initial_status(request.amount, threshold_minor),
            created_at=now,
            updated_at=now,
        )
        _insert(uow, payout, _creation_cause("requested by the merchant", payout, threshold_minor))
        created.append(payout)
        return 201, payout_view(payout)

    stored = run_idempotent(
        uow_factory,
        merchant_id=merchant_id,
        scope=IDEMPOTENCY_SCOPE,
        key=request.out_payout_no,
        request_hash=request.fingerprint(account_fingerprint),
        create=insert,
        param="out_payout_no",
        taken_by=lambda uow: uow.payouts.id_of_out_payout_no(merchant_id, request.out_payout_no),
    )
    if created:
        return CreatedPayout(created[0], replayed=False)
    # A repeat: the stored first answer names the payout, which is read as it is now.
    return CreatedPayout(get_payout(uow_factory, merchant_id, str(stored.body["id"])), replayed=stored.replayed)


def create_settlement_payout(
    uow: UnitOfWork,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    *,
    merchant_id: str,
    settlement_id: str,
    amount: Money,
    account: PayeeAccount,
) -> Payout:
    """Inside the caller's unit of work: a payout of a settlement to the merchant's settlement account.

    Raises InsufficientBalance (from the ledger) when ``available`` does not cover ``amount``, and
    BankSwitchedOff when an operator switched the account's bank (or the paying bank) off; the caller's
    unit of work then rolls back, and the ``settlement_payouts`` job tries again at its next tick. The
    caller attaches the payout to its settlement. Never held for review: the platform computed the
    amount, and it is the merchant's own settlement.
    """
    check_amount(amount)
    payee = _sealed_payee(cipher, account)
    now = clock.now()
    payout = Payout(
        id=ids.new(id_prefixes.PAYOUT),
        source=PayoutSource.MERCHANT,
        merchant_id=merchant_id,
        member_id=None,
        out_payout_no=None,
        amount=amount,
        purpose=f"settlement {settlement_id}",
        payee_bank=payee.bank,
        account_name=payee.account_name,
        account_masked=payee.account_masked,
        account_fingerprint=payee.account_fingerprint,
        account_sealed=payee.account_sealed,
        card_id=None,
        bank=sending_bank(payee.bank, directory.payout_banks(), switched_off=routing.switched_off_in(uow)),
        status=PayoutStatus.CREATED,
        created_at=now,
        updated_at=now,
        settlement_id=settlement_id,
    )
    _insert(uow, payout, f"payout of settlement {settlement_id}")
    return payout


def get_payout(uow_factory: UnitOfWorkFactory, merchant_id: str, payout_id: str) -> Payout:
    """The merchant's payout; another merchant's payout, or a member's withdrawal, is NotFound."""
    with uow_factory() as uow:
        payout = uow.payouts.get(payout_id, merchant_id=merchant_id)
    if payout is None:
        raise NotFound(f"no payout {payout_id}", param="id")
    return payout


def list_payouts(
    uow_factory: UnitOfWorkFactory, merchant_id: str, *, limit: int = 20, starting_after: str | None = None
) -> tuple[Sequence[Payout], bool]:
    """The merchant's payouts, newest first, and whether there are more after them."""
    limit = max(1, min(limit, LIST_LIMIT_MAX))
    with uow_factory() as uow:
        found = uow.payouts.of_merchant(merchant_id, limit=limit + 1, starting_after=starting_after)
    return found[:limit], len(found) > limit


def payout_transitions_of(uow_factory: UnitOfWorkFactory, payout_id: str) -> Sequence[PayoutTransition]:
    """The payout's transition trail, oldest first (for support and tests)."""
    with uow_factory() as uow:
        return uow.payouts.transitions_of(payout_id)


# ---- member withdrawals -------------------------------------------------------------------------------


def request_withdrawal(
    uow_factory: UnitOfWorkFactory,
    tools: MemberTools,
    directory: PayoutDirectory,
    member_id: str,
    *,
    card_id: str,
    amount: Money,
    payment_password: str,
    form_key: str | None = None,
) -> Payout:
    """Withdraws ``amount`` from the member's wallet to one of its bound cards, once the payment
    password checks out (the wallet's lockout rules apply); returns the ``created`` withdrawal, or the
    ``pending_review`` one when the amount reaches ``tools.withdrawal_review_threshold_minor``.

    The card number stays sealed in ``card_bindings``: the withdrawal names the card, and the number
    is opened only in memory when the batch is sent. Raises InsufficientBalance (nothing stored) when
    the wallet does not cover the amount, and BankSwitchedOff (``card_id``, nothing stored) when an
    operator switched off the card's bank or the bank that would pay it (``withdrawal_cards`` greys
    such a card out on the page; this refuses a page older than the switch, or a forged one).

    ``form_key`` is the one-time key the withdrawal page renders into its form: the withdrawal and
    the key's record commit together, so a second POST of the same form returns the first withdrawal
    instead of making another (the same key with another amount or card is IdempotencyConflict).
    """
    check_amount(amount)
    idempotency_key = None if form_key is None else member_form_key(member_id, form_key)
    verify_payment_password(uow_factory, tools, member_id, payment_password)
    created: list[Payout] = []

    def insert(uow: UnitOfWork) -> tuple[int, dict[str, object]]:
        payout = _new_withdrawal(uow, tools, directory, member_id, card_id, amount)
        _insert(uow, payout, _creation_cause("requested by the member", payout,
                                             tools.withdrawal_review_threshold_minor))
        created.append(payout)
        return 201, {"id": payout.id}

    if idempotency_key is None:
        with uow_factory() as uow:
            insert(uow)
            uow.commit()
        return created[0]
    stored = run_idempotent(
        uow_factory,
        merchant_id=FORM_KEY_OWNER,
        scope=WITHDRAWAL_IDEMPOTENCY_SCOPE,
        key=idempotency_key,
        request_hash=hashlib.sha256(f"{card_id}\n{amount.minor}\n{amount.currency}".encode()).hexdigest(),
        create=insert,
        param="form_key",
    )
    if created:
        return created[0]
    log.info("payouts.withdrawal_replayed", member_id=member_id, payout_id=stored.body["id"])
    with uow_factory() as uow:
        first = uow.payouts.get(str(stored.body["id"]))
    if first is None:
        raise NotFound("the first withdrawal of this form is gone", param="form_key")
    return first


def _new_withdrawal(
    uow: UnitOfWork, tools: MemberTools, directory: PayoutDirectory, member_id: str, card_id: str, amount: Money
) -> Payout:
    member = uow.members.get(member_id)
    binding = uow.card_bindings.get(card_id)
    if member is None:
        raise NotFound(f"no member {member_id}", param="member_id")
    if binding is None or binding.member_id != member_id or binding.status is not BindingStatus.BOUND:
        raise NotFound("no bound card with this id", param="card_id")
    if not member.name:
        raise InvalidPayeeAccount("verify your real name before withdrawing", param="card_id")
    now = tools.clock.now()
    return Payout(
        id=tools.ids.new(id_prefixes.PAYOUT),
        source=PayoutSource.MEMBER,
        merchant_id=None,
        member_id=member_id,
        out_payout_no=None,
        amount=amount,
        purpose=WITHDRAWAL_PURPOSE,
        payee_bank=binding.bank,
        account_name=member.name,
        account_masked=binding.card_masked,
        account_fingerprint=binding.card_fingerprint,
        account_sealed=None,
        card_id=binding.id,
        bank=sending_bank(
            binding.bank, directory.payout_banks(), switched_off=routing.switched_off_in(uow), param="card_id"
        ),
        status=initial_status(amount, tools.withdrawal_review_threshold_minor),
        created_at=now,
        updated_at=now,
    )


def withdrawal_cards(
    uow_factory: UnitOfWorkFactory, directory: PayoutDirectory, member_id: str
) -> list[routing.CardOffer]:
    """The member's bound cards for a withdrawal, each greyed out with the code ``request_withdrawal``
    would refuse it with now (``bank_switched_off``, ``payout_not_supported``): the page applies the
    same routing rule (``sending_bank``) as the withdrawal itself, so it never offers a card it refuses."""
    switched_off = routing.disabled_banks(uow_factory)
    payout_banks = directory.payout_banks()
    offers: list[routing.CardOffer] = []
    for card in cards_of(uow_factory, member_id, merchant_id=None):
        try:
            sending_bank(card.bank, payout_banks, switched_off=switched_off, param="card_id")
        except DomainError as refusal:
            offers.append(routing.CardOffer(card, refusal.code))
            continue
        offers.append(routing.CardOffer(card))
    return offers


def withdrawals_of(uow_factory: UnitOfWorkFactory, member_id: str, *, limit: int = 20) -> Sequence[Payout]:
    with uow_factory() as uow:
        return uow.payouts.of_member(member_id, limit=limit)


# ---- review (人工审核) -----------------------------------------------------------------------------------


def payouts_awaiting_review(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT_MAX) -> Sequence[Payout]:
    """The payouts held for review, oldest first."""
    with uow_factory() as uow:
        return uow.payouts.awaiting_review(limit=limit)


def review_payout(
    uow: UnitOfWork, clock: Clock, payout_id: str, decision: PayoutEvent, *, reviewer: str, reason: str
) -> tuple[Payout, Payout]:
    """Inside the caller's unit of work (the caller audits and commits): approves or rejects a payout
    held for review; returns it before and after.

    APPROVED: ``pending_review → created``; the next ``payout_dispatch`` sends it. REJECTED:
    ``pending_review → failed`` with the code ``rejected_in_review``; the submit entry is reversed as
    for a bank's decline (the money is back) and the merchant receives ``payout.failed``. The move is a
    compare-and-set on the status after the row is locked, so of two decisions (a double click, or an
    approval racing a rejection) exactly one wins; the other raises Conflict naming what happened.
    """
    if decision not in (PayoutEvent.APPROVED, PayoutEvent.REJECTED):
        raise ValueError(f"a review approves or rejects, not {decision.value}")
    payout = uow.payouts.get_for_update(payout_id)
    if payout is None:
        raise NotFound(f"no payout {payout_id}", param="payout_id")
    if payout.status is not PayoutStatus.PENDING_REVIEW:
        raise Conflict(_already_decided(payout), param="payout_id")
    now = clock.now()
    moved = payout.moved_to(decision, now)
    rejected = decision is PayoutEvent.REJECTED
    if rejected:
        moved = replace(moved, failure_code=REJECTED_IN_REVIEW, failure_message=REJECTED_IN_REVIEW_MESSAGE)
    if not uow.payouts.update(moved, expected=PayoutStatus.PENDING_REVIEW):
        raise Conflict(f"payout {payout_id} was decided by someone else meanwhile; reload it", param="payout_id")
    # The operator's reason stays in the trail (and the audit log), never in what the merchant reads.
    _record(uow, payout.id, payout.status.value, moved.status.value, decision.value,
            f"{decision.value} in review by {reviewer}: {reason}", now)
    if rejected:
        uow.ledger.post(payout_failed(_submit_entry(payout)))
        _notify(uow, moved, EventType.PAYOUT_FAILED)
    log.info("payouts.reviewed", payout_id=payout_id, decision=decision.value, reviewer=reviewer)
    return payout, moved


def _already_decided(payout: Payout) -> str:
    if payout.failure_code == REJECTED_IN_REVIEW:
        return f"payout {payout.id} was already rejected in review; nothing changed"
    if payout.status is PayoutStatus.FAILED:
        return f"payout {payout.id} already failed; nothing changed"
    return f"payout {payout.id} was already approved (it is {payout.status.value} now); nothing changed"


def _creation_cause(cause: str, payout: Payout, threshold_minor: int | None) -> str:
    if payout.status is PayoutStatus.PENDING_REVIEW:
        return f"{cause}; held for review at the threshold of {threshold_minor} fen"
    return cause


# ---- worker jobs ------------------------------------------------------------------------------------


def dispatch_payouts(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    now: datetime,
    *,
    notify_base_url: str = "",
    policy: RequeryPolicy = RequeryPolicy(),
    batch_size: int = DISPATCH_BATCH_SIZE,
) -> int:
    """Batches the created payouts per sending bank, sends each batch once; returns how many it sent.

    The batches and their payouts' move to ``processing`` commit in one unit of work before any bank
    is called, so a second worker finds nothing left to take, and a crash after the commit leaves
    batches that the re-query job resolves (a batch never received is NOT_SUBMITTED once the bank's
    window has passed, and its payouts fail with the money returned). ``notify_base_url`` is the
    platform's public base URL: banks send their payout notices to ``{base}/channels/{bank}/payouts/notify``.
    """
    batches: list[PayoutBatchRecord] = []
    with uow_factory() as uow:
        by_bank: dict[str, list[Payout]] = defaultdict(list)
        for payout in uow.payouts.to_dispatch(limit=batch_size):
            by_bank[payout.bank].append(payout)
        for bank, pending in sorted(by_bank.items()):
            batch = _open_batch(uow, ids, bank, pending, now, policy)
            if batch is not None:
                batches.append(batch)
        uow.commit()
    for batch in batches:
        _send(uow_factory, clock, directory, cipher, batch, notify_base_url)
    return sum(len(batch.payout_ids) for batch in batches)


def settlement_payouts(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    now: datetime,
    *,
    batch_size: int = SETTLEMENT_BATCH_SIZE,
) -> int:
    """Pays out settled settlements of merchants with automatic payout on; returns how many it created.

    Each payout is of the settlement's net, to the merchant's settlement account, created and attached
    to its settlement in one unit of work (the attach is a compare-and-set, so two workers never pay a
    settlement twice). A merchant whose available balance no longer covers the net (a payout it made
    itself in between) is skipped, and tried again at the next tick.
    """
    del now
    with uow_factory() as uow:
        due = uow.settlements.awaiting_payout(batch_size)
    created = 0
    for settlement in due:
        with uow_factory() as uow:
            account = settlement_account(uow, settlement.merchant_id, pii=cipher)
            if account is None:
                continue
            try:
                payout = create_settlement_payout(
                    uow, clock, ids, directory, cipher,
                    merchant_id=settlement.merchant_id,
                    settlement_id=settlement.id,
                    amount=settlement.net,
                    account=PayeeAccount(account.bank, account.account_no, account.account_name),
                )
            except DomainError as refused:
                log.warning("settlement_payout_refused", settlement_id=settlement.id, error=refused.code)
                continue
            if not uow.settlements.attach_payout(settlement.id, payout.id):
                continue
            uow.commit()
            created += 1
    return created + _retry_failed_settlement_payouts(uow_factory, clock, ids, directory, cipher, batch_size)


def _retry_failed_settlement_payouts(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    batch_size: int,
) -> int:
    # A settlement whose payout failed or bounced is paid again automatically only once the merchant's
    # settlement account differs from the one that failed: the same payout to the same account would
    # fail the same way. An operator may retry it regardless (``retry_settlement_payout``).
    with uow_factory() as uow:
        waiting = uow.settlements.payout_failed_awaiting(batch_size)
    created = 0
    for settlement in waiting:
        try:
            payout = retry_settlement_payout(
                uow_factory, clock, ids, directory, cipher, settlement.id, only_if_account_changed=True
            )
        except DomainError as refused:
            log.warning("settlement_payout_retry_refused", settlement_id=settlement.id, error=refused.code)
            continue
        if payout is not None:
            created += 1
    return created


def retry_settlement_payout(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    settlement_id: str,
    *,
    only_if_account_changed: bool = False,
) -> Payout | None:
    """Pays a settlement whose payout failed or bounced again: a new payout (a new request number) of
    its net to the merchant's current settlement account, attached in the same unit of work.

    The attach is a compare-and-set from ``payout_failed`` naming the failed payout, which is final
    with its money back in ``available``: a settlement never has two payouts that may both succeed,
    and a second retry (another worker, a double click) raises Conflict. ``only_if_account_changed``
    (the automatic run) returns None, creating nothing, while the account is the one that failed.
    Raises InsufficientBalance when ``available`` no longer covers the net, InvalidPayeeAccount when
    the merchant has no settlement account, BankSwitchedOff when the account's bank (or the paying
    bank) is switched off in the console, NotFound and Conflict.
    """
    with uow_factory() as uow:
        found = uow.settlements.get(settlement_id)
        if found is None:
            raise NotFound(f"no settlement {settlement_id}", param="settlement_id")
        failed_id = found.payout_id
        if found.status is not SettlementStatus.PAYOUT_FAILED or failed_id is None:
            raise Conflict(
                f"settlement {settlement_id} is {found.status.value}: only a settlement whose payout failed is "
                "paid again", param="settlement_id",
            )
        account = settlement_account(uow, found.merchant_id, pii=cipher)
        payee = _sealed_payee(cipher, None if account is None else PayeeAccount(
            account.bank, account.account_no, account.account_name
        ))
        failed = uow.payouts.get(failed_id)
        if only_if_account_changed and failed is not None and not payee_changed(
            Payee(failed.payee_bank, failed.account_fingerprint, failed.account_name),
            Payee(payee.bank, payee.account_fingerprint, payee.account_name),
        ):
            return None
        assert account is not None
        payout = create_settlement_payout(
            uow, clock, ids, directory, cipher,
            merchant_id=found.merchant_id, settlement_id=found.id, amount=found.net,
            account=PayeeAccount(account.bank, account.account_no, account.account_name),
        )
        if not uow.settlements.reattach_payout(settlement_id, failed_id, payout.id, clock.now()):
            raise Conflict(f"settlement {settlement_id} is being paid again already", param="settlement_id")
        uow.commit()
    log.info("settlement_payout_retried", settlement_id=settlement_id, failed_payout_id=failed_id,
             payout_id=payout.id)
    return payout


def requery_payouts(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    now: datetime,
    *,
    policy: RequeryPolicy = RequeryPolicy(),
    batch_size: int = REQUERY_BATCH_SIZE,
) -> int:
    """Queries the banks about open batches whose next query is due; returns how many it queried.

    Claiming moves each due batch's next query into the future in one unit of work (first
    ``policy.first_after_s`` after the batch, then doubling up to ``policy.max_interval_s``), so a
    second worker skips them; the queries run after the commit. A batch with nothing left in flight
    is closed.
    """
    claimed: list[PayoutBatchRecord] = []
    with uow_factory() as uow:
        for batch in uow.payouts.batches_due_for_query(now, limit=batch_size):
            next_at = policy.next_query_at(now, batch.query_count + 1)
            if uow.payouts.reschedule_batch(batch.id, expected_query_count=batch.query_count, next_query_at=next_at):
                claimed.append(batch)
        uow.commit()
    for batch in claimed:
        try:
            _query(uow_factory, clock, directory, cipher, batch)
        except Exception:
            # One batch's trouble (a bank without a channel, an amount mismatch) must not stop the
            # others; it stays open and is queried again at its next time.
            log.exception("payout_requery_failed", batch_id=batch.id, bank=batch.bank)
    return len(claimed)


# ---- the bank's answer: the submit, the re-query, a notification, or reconciliation's statement ---------


def apply_payout_result(
    uow_factory: UnitOfWorkFactory, clock: Clock, payout_id: str, result: ChannelResult
) -> Payout:
    """Records what a bank said about a payout; returns the payout as it is now. Idempotent.

    SUCCEEDED posts the success entry, sends ``payout.succeeded`` and marks a settlement's payout
    paid; FAILED and NOT_SUBMITTED reverse the submit entry (money back) and send ``payout.failed``;
    PENDING and UNKNOWN only move the status. A repeat, or an answer that teaches nothing, changes
    nothing. A final answer contradicting a final state (SUCCEEDED after the money was already
    returned on a failure, or the reverse) is not applied: it raises an operator alert. A success the
    platform recorded as failed ``undone_by_recovery`` (its line was booked to suspense and recovered)
    told again is the same news: nothing changes and nothing is alerted. Raises NotFound for a payout
    we never made and AmountMismatch (alerted, nothing recorded) when the bank confirms another amount.
    """
    return _apply(uow_factory, clock, payout_id, _EVENT_BY_OUTCOME[result.outcome], result)


def apply_payout_return(
    uow_factory: UnitOfWorkFactory, clock: Clock, payout_id: str, result: ChannelResult
) -> Payout:
    """Records a bounce (退票): the payee's bank sent a succeeded payout back. Idempotent.

    The money goes back to the account it left (bounce entry) and ``payout.returned`` is sent. A
    bounce of a payout we still had in flight means its success notice was lost: the success is
    recorded first, then the bounce. A bounce of a payout we recorded as failed (money already
    returned) is alerted, not applied. When reconciliation booked the bounce line to suspense and an
    operator closed that follow-up, the bounce moves suspense instead of the reserve (written off) or is
    undone (recovered: the payout stays paid, nothing is booked), and an exception tells an operator
    (docs/reconciliation.md, "After a follow-up is closed").
    """
    with uow_factory() as uow:
        payout = uow.payouts.get(payout_id)
    if payout is None:
        raise NotFound(f"no payout {payout_id}", param="payout_id")
    if payout.status.is_in_flight:
        success = ChannelResult(Outcome.SUCCEEDED, result.bank_reference, bank_message="implied by the bounce")
        _apply(uow_factory, clock, payout_id, PayoutEvent.SUCCEEDED, success)
    return _apply(uow_factory, clock, payout_id, PayoutEvent.RETURNED, result)


def handle_payout_notification(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    directory: PayoutDirectory,
    bank: str,
    body: bytes,
    content_type: str,
    *,
    others_may_claim: bool,
) -> NotificationAck | None:
    """Verifies and applies a bank's payout notice; returns the answer the bank expects.

    None when the body is not a payout notice and ``others_may_claim`` (the bank's payment
    notifications arrive at the same address: the caller hands them on). A notice that fails
    verification changes nothing; a duplicate is accepted and changes nothing.
    """
    channel = directory.payouts(bank)
    try:
        notification = channel.parse_notification(body, content_type)
    except InvalidNotification as invalid:
        if others_may_claim:
            return None
        log.warning("payouts.notification_invalid", bank=bank, reason=str(invalid), body_bytes=len(body))
        return channel.notification_ack(False)
    if notification.kind not in (KIND_PAYOUT, KIND_PAYOUT_RETURNED):
        return None if others_may_claim else channel.notification_ack(False)
    payout_id = notification.platform_reference
    try:
        if notification.kind == KIND_PAYOUT_RETURNED:
            apply_payout_return(uow_factory, clock, payout_id, notification.result)
        else:
            apply_payout_result(uow_factory, clock, payout_id, notification.result)
    except NotFound:
        _alert(
            uow_factory, clock, AlertKind.UNKNOWN_REFERENCE,
            dedupe_key=f"unknown_payout:{bank}:{payout_id}:{notification.kind}",
            subject_id=None,
            message=f"{bank} sent a payout notice about {payout_id}, which this platform does not know",
            details={"bank": bank, "kind": notification.kind, **_result_details(notification.result)},
        )
        # Recorded for an operator: the bank need not send it again.
        return channel.notification_ack(True)
    except DomainError as error:
        log.error("payouts.notification_not_recorded", bank=bank, payout_id=payout_id, error=error.code)
        return channel.notification_ack(False)
    return channel.notification_ack(True)


# ---- the payout as merchants see it ------------------------------------------------------------------


def payout_view(payout: Payout) -> dict[str, object]:
    """The payout's public JSON (the API's ``payout`` object and every ``payout.*`` event's data)."""
    return {
        "id": payout.id,
        "object": "payout",
        "out_payout_no": payout.out_payout_no,
        "amount": payout.amount.minor,
        "currency": payout.amount.currency.code,
        "purpose": payout.purpose,
        "status": payout.status.public,
        "account": {
            "bank": payout.payee_bank,
            "account_no_masked": payout.account_masked,
            "account_name": payout.account_name,
        },
        "bank": payout.bank,
        "batch_id": payout.batch_id,
        "settlement_id": payout.settlement_id,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "created_at": iso_utc(payout.created_at),
        "succeeded_at": None if payout.succeeded_at is None else iso_utc(payout.succeeded_at),
        "failed_at": None if payout.failed_at is None else iso_utc(payout.failed_at),
        "returned_at": None if payout.returned_at is None else iso_utc(payout.returned_at),
    }


# ---- helpers -------------------------------------------------------------------------------------------


def _sealed_payee(cipher: PiiCipher, account: PayeeAccount | None) -> _SealedPayee:
    """The payee with its number sealed (the request's account, or the merchant's settlement account)."""
    if account is None:
        raise InvalidPayeeAccount(
            "no settlement account is set for this merchant; send an account", param="to_settlement_account"
        )
    fingerprint = cipher.fingerprint(PII_BANK_ACCOUNT, account.account_no)
    return _SealedPayee(
        bank=account.bank,
        account_name=account.account_name.strip(),
        account_sealed=cipher.encrypt(PII_BANK_ACCOUNT, account.account_no, fingerprint),
        account_fingerprint=fingerprint,
        account_masked=mask_account_no(account.account_no),
    )


def _insert(uow: UnitOfWork, payout: Payout, cause: str) -> None:
    uow.payouts.add(payout)
    _record(uow, payout.id, None, payout.status.value, "created", cause, payout.created_at)
    # Last write that can fail: the ledger refuses an entry that would take the source below zero.
    uow.ledger.post(_submit_entry(payout))


def _open_batch(
    uow: UnitOfWork, ids: IdGenerator, bank: str, pending: Sequence[Payout], now: datetime, policy: RequeryPolicy
) -> PayoutBatchRecord | None:
    """Persists one batch of ``pending`` payouts (all for ``bank``) and moves them to ``processing``."""
    batch_id = ids.new(id_prefixes.PAYOUT_BATCH)
    total = sum((payout.amount for payout in pending), Money.zero(pending[0].amount.currency))
    # The batch is queried first a while after it is sent: if this worker dies before sending, the
    # re-query job still learns what became of it.
    batch = PayoutBatchRecord(
        id=batch_id,
        bank=bank,
        payout_ids=tuple(payout.id for payout in pending),
        total=total,
        created_at=now,
        next_query_at=policy.first_query_at(now),
    )
    uow.payouts.add_batch(batch)
    taken = []
    for payout in pending:
        moved = replace(payout.moved_to(PayoutEvent.BATCHED, now), batch_id=batch_id)
        if uow.payouts.update(moved, expected=PayoutStatus.CREATED):
            _record(uow, payout.id, payout.status.value, moved.status.value, "batched", f"in batch {batch_id}", now)
            taken.append(payout.id)
    if not taken:
        uow.payouts.close_batch(batch_id, now)
        return None
    return replace(batch, payout_ids=tuple(taken))


def _send(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    record: PayoutBatchRecord,
    notify_base_url: str,
) -> None:
    """Sends a committed batch once and records every payout's answer."""
    try:
        channel = directory.payouts(record.bank)
        batch = _batch_to_send(uow_factory, cipher, record)
        if notify_base_url:
            notify_url = f"{notify_base_url.rstrip('/')}/channels/{record.bank}/payouts/notify"
            batch = replace(batch, notify_url=notify_url)
        results = channel.submit_payouts(batch)
    except Exception:
        # A channel answers every bank trouble with an outcome; an exception is our own bug (or a
        # channel gone), after which nobody knows whether the request left: the batch is queried.
        log.exception("payout_submit_failed", batch_id=record.id, bank=record.bank)
        results = {}
    _record_results(uow_factory, clock, record, results)


def _query(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    directory: PayoutDirectory,
    cipher: PiiCipher,
    record: PayoutBatchRecord,
) -> None:
    with uow_factory() as uow:
        in_flight = uow.payouts.in_flight_count(record.id)
    if in_flight:
        channel = directory.payouts(record.bank)
        results = channel.query_payouts(_batch_to_send(uow_factory, cipher, record))
        _record_results(uow_factory, clock, record, results, missing_is_unknown=False)
    with uow_factory() as uow:
        if uow.payouts.in_flight_count(record.id) == 0:
            uow.payouts.close_batch(record.id, clock.now())
            uow.commit()


def _record_results(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    record: PayoutBatchRecord,
    results: Mapping[str, ChannelResult],
    *,
    missing_is_unknown: bool = True,
) -> None:
    for payout_id in record.payout_ids:
        result = results.get(payout_id)
        if result is None:
            if not missing_is_unknown:
                continue
            result = ChannelResult(Outcome.UNKNOWN, bank_message="no answer about this payout; query it")
        try:
            apply_payout_result(uow_factory, clock, payout_id, result)
        except Exception:
            log.exception("payout_result_not_recorded", payout_id=payout_id, batch_id=record.id)


def _batch_to_send(uow_factory: UnitOfWorkFactory, cipher: PiiCipher, record: PayoutBatchRecord) -> PayoutBatch:
    """The batch as the channel sends it: the same ids, account numbers opened in memory only."""
    orders = []
    with uow_factory() as uow:
        for payout in uow.payouts.in_batch(record.id):
            orders.append(
                PayoutOrder(
                    payout_id=payout.id,
                    amount=payout.amount,
                    account_no=_account_no(uow, cipher, payout),
                    account_name=payout.account_name,
                    account_bank=payout.payee_bank,
                    purpose=payout.purpose,
                    created_at=payout.created_at,
                )
            )
    return PayoutBatch(batch_id=record.id, orders=tuple(orders), created_at=record.created_at)


def _account_no(uow: UnitOfWork, cipher: PiiCipher, payout: Payout) -> str:
    """The payee number in clear, for the bank only: never log or store what this returns."""
    if payout.card_id is not None:
        binding = uow.card_bindings.get(payout.card_id)
        if binding is None:
            raise NotFound(f"payout {payout.id} names a card that is gone", param="card_id")
        sealed = SealedPii(binding.card_number_sealed, binding.card_fingerprint, binding.card_masked)
        return reveal(cipher, PiiKind.CARD_NUMBER, sealed)
    if payout.account_sealed is None:
        raise NotFound(f"payout {payout.id} has no payee account", param="account")
    return cipher.decrypt(PII_BANK_ACCOUNT, payout.account_sealed, payout.account_fingerprint)


def _apply(
    uow_factory: UnitOfWorkFactory, clock: Clock, payout_id: str, event: PayoutEvent, result: ChannelResult
) -> Payout:
    with uow_factory() as uow:
        payout = uow.payouts.get_for_update(payout_id)
        if payout is None:
            raise NotFound(f"no payout {payout_id}", param="payout_id")
        allowed = (payout.status, event) in TRANSITIONS
        mismatch = event is PayoutEvent.SUCCEEDED and result.amount is not None and result.amount != payout.amount
        if allowed and not mismatch:
            now = clock.now()
            closed = _closed_follow_up(uow, payout_id, event)
            if closed is not None and closed.treatment is AfterClose.UNDONE and event is PayoutEvent.RETURNED:
                # An operator recovered the bounce line booked to suspense (its money was paid out of the
                # reserve again, to whom it belonged): the bounce the bank reports was undone, so the payout
                # stays paid, nothing is booked and the merchant is not given the money a second time.
                open_recorded_after_close(uow, closed, entry_id=None, record_status=payout.status.value, now=now)
                uow.commit()
                return payout
            if closed is not None and closed.treatment is AfterClose.UNDONE:
                # An operator recovered the line booked to suspense (the money came back to the reserve):
                # the success the bank reports was undone, so the payout fails and its money goes back.
                event = PayoutEvent.FAILED
                result = closed.undo(result)
            moved, entry_id = _move(uow, payout, event, result, now, closed)
            if closed is not None:
                open_recorded_after_close(uow, closed, entry_id=entry_id, record_status=moved.status.value, now=now)
            uow.commit()
            return moved
    if mismatch:
        message = f"the bank reported {result.amount} for payout {payout_id} of {payout.amount}"
        _alert(
            uow_factory, clock, AlertKind.AMOUNT_MISMATCH,
            dedupe_key=f"payout_amount_mismatch:{payout_id}:{result.amount}",
            subject_id=payout_id, message=message, details={"payout_id": payout_id, **_result_details(result)},
        )
        raise AmountMismatch(message, param="amount")
    if event is PayoutEvent.SUCCEEDED and repeats_undone_success(
        result, failure_code=payout.failure_code, bank_reference=payout.bank_reference, amount=payout.amount
    ):
        # The success an operator's recovery undid, told again: the payout already failed on it.
        log.info("payouts.undone_success_repeated", payout_id=payout_id)
        return payout
    contradiction = _contradicts(payout.status, event)
    if contradiction is None:
        return payout
    # A bank that contradicts a final state is reconciliation territory: a person decides.
    _alert(
        uow_factory, clock, AlertKind.BANK_CHANGED_ITS_MIND,
        dedupe_key=f"payout_changed:{payout_id}:{payout.status.value}:{event.value}",
        subject_id=payout_id,
        message=f"payout {payout_id} is {payout.status.value}, and the bank now says {event.value}: {contradiction}",
        details={"payout_id": payout_id, "status": payout.status.value, "event": event.value,
                 **_result_details(result)},
    )
    return payout


def _closed_follow_up(uow: UnitOfWork, payout_id: str, event: PayoutEvent) -> ClosedFollowUp | None:
    """The closed follow-up in suspense of the line this answer is about: the payout's own line (money out)
    for a success, its bounce line (money back in) for a bounce. Each was booked on its own, so a bounce
    never settles the payout line's follow-up, nor a success the bounce's (docs/reconciliation.md)."""
    if event is PayoutEvent.SUCCEEDED:
        return closed_follow_up(uow, payout_id, money_in=False)
    if event is PayoutEvent.RETURNED:
        return closed_follow_up(uow, payout_id, money_in=True)
    return None


def _contradicts(status: PayoutStatus, event: PayoutEvent) -> str | None:
    """Why a final answer about a final (or never sent) payout cannot be applied; None if it is no news."""
    if event not in _FINAL_EVENTS:
        return None
    if status in (PayoutStatus.CREATED, PayoutStatus.PENDING_REVIEW):
        return "the payout was never sent"
    if status.value == event.value:
        return None
    if status is PayoutStatus.RETURNED and event is PayoutEvent.SUCCEEDED:
        return None
    if status is PayoutStatus.FAILED:
        return "its money was already returned on the failure; not applied"
    return "a final payout does not change its mind; not applied"


def _move(
    uow: UnitOfWork,
    payout: Payout,
    event: PayoutEvent,
    result: ChannelResult,
    now: datetime,
    closed: ClosedFollowUp | None = None,
) -> tuple[Payout, str | None]:
    """Moves the payout and posts what the move books; returns it and that entry's id (if any).
    ``closed``: a written-off follow-up in suspense, so a success or a bounce moves suspense instead of the
    reserve that the suspense booking already moved."""
    entry: JournalEntry | None = None
    failed = event is PayoutEvent.FAILED
    moved = replace(
        payout.moved_to(event, now),
        bank_reference=result.bank_reference or payout.bank_reference,
        failure_code=(result.bank_code or result.outcome.value) if failed else payout.failure_code,
        failure_message=(result.bank_message or None) if failed else payout.failure_message,
    )
    if not uow.payouts.update(moved, expected=payout.status):
        raise IllegalTransition(
            f"payout {payout.id} changed while {event.value} was being recorded; read it again", param="status"
        )
    cause = f"{result.outcome.value} {result.bank_code or ''} {result.bank_message}".strip()
    _record(uow, payout.id, payout.status.value, moved.status.value, event.value, cause, now)
    if event is PayoutEvent.SUCCEEDED:
        entry = payout_succeeded(payout_id=payout.id, bank=payout.bank, amount=payout.amount)
        if closed is not None:
            entry = against_suspense(entry, bank=payout.bank) or entry
        uow.ledger.post(entry)
        _notify(uow, moved, EventType.PAYOUT_SUCCEEDED)
        if moved.settlement_id is not None:
            mark_settlement_paid(uow, settlement_id=moved.settlement_id, payout_id=moved.id, now=now)
    elif failed:
        entry = payout_failed(_submit_entry(payout))
        uow.ledger.post(entry)
        _notify(uow, moved, EventType.PAYOUT_FAILED)
    elif event is PayoutEvent.RETURNED:
        entry = payout_returned(
            payout_id=payout.id, source=payout.source_account, bank=payout.bank, amount=payout.amount
        )
        if closed is not None:
            entry = against_suspense(entry, bank=payout.bank) or entry
        uow.ledger.post(entry)
        _notify(uow, moved, EventType.PAYOUT_RETURNED)
    if moved.settlement_id is not None and (failed or event is PayoutEvent.RETURNED):
        # The money is back in available (above); the settlement waits to be paid again.
        mark_settlement_payout_failed(
            uow, settlement_id=moved.settlement_id, payout_id=moved.id, returned=not failed, now=now
        )
    return moved, None if entry is None else entry.id


def _notify(uow: UnitOfWork, payout: Payout, event_type: EventType) -> None:
    # A member's withdrawal has no merchant to tell; the wallet shows its status.
    if payout.merchant_id is not None:
        uow.outbox.add_event(payout.merchant_id, event_type, payout_view(payout))


def _submit_entry(payout: Payout) -> JournalEntry:
    return payout_submitted(payout_id=payout.id, source=payout.source_account, bank=payout.bank, amount=payout.amount)


def _alert(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    kind: AlertKind,
    *,
    dedupe_key: str,
    subject_id: str | None,
    message: str,
    details: Mapping[str, str],
) -> None:
    dedupe_key = dedupe_key[:200]
    log.error("payouts.alert", kind=kind.value, subject_id=subject_id)
    alert = OperatorAlert(
        # The alert's id derives from its dedupe key: raising it twice names the same alert.
        id=f"{id_prefixes.ALERT}_{hashlib.sha256(dedupe_key.encode()).hexdigest()[:26]}",
        kind=kind,
        severity=AlertSeverity.ERROR,
        dedupe_key=dedupe_key,
        subject_id=subject_id,
        message=message,
        created_at=clock.now(),
        details=dict(details),
    )
    with uow_factory() as uow:
        uow.alerts.raise_alert(alert)
        uow.commit()


def _result_details(result: ChannelResult) -> dict[str, str]:
    return {
        "outcome": result.outcome.value,
        "bank_reference": result.bank_reference or "",
        "bank_code": result.bank_code or "",
        "bank_message": result.bank_message,
    }


def _record(
    uow: UnitOfWork, payout_id: str, from_status: str | None, to_status: str, event: str, cause: str, now: datetime
) -> None:
    uow.payouts.record_transition(PayoutTransition(payout_id, from_status, to_status, event, cause, now))



def settlement_account_of(uow_factory: UnitOfWorkFactory, cipher: PiiCipher, merchant_id: str) -> PayeeAccount | None:
    """The merchant's settlement account from its settlement settings (None when it has none)."""
    with uow_factory() as uow:
        account = settlement_account(uow, merchant_id, pii=cipher)
    if account is None:
        return None
    return PayeeAccount(account.bank, account.account_no, account.account_name)
