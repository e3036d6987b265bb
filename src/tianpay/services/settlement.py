"""Settlement use cases: settle a merchant's business date, the daily T+N job, settings, payout hooks.

A date is settled once it is over (Shanghai midnight) and every required bank's reconciliation of
it has finished; the net of the entries left on ``merchant:M:pending`` then moves to
``merchant:M:available`` in one journal entry, with one line per entry settled. Running a date
again changes nothing: the settlement of (merchant, date) is unique and its entry id derives from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableSet
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import structlog

from tianpay.domain.errors import Conflict, DomainError, InsufficientBalance, NotFound
from tianpay.domain.ledger import merchant_available
from tianpay.domain.member import SealedPii
from tianpay.domain.money import Currency, Money
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.domain.posting_rules import settlement_settled
from tianpay.domain.settlement import (
    MAX_CYCLE_DAYS,
    InvalidSettlementSettings,
    Settlement,
    SettlementAccount,
    SettlementEvent,
    SettlementLine,
    SettlementSettings,
    SettlementStatus,
    Totals,
    business_date_due,
    business_date_of,
    check_account_bank,
    check_account_name,
    check_account_no,
    check_cycle_days,
    check_minimum_payout,
    cutoff_of,
    default_settings,
    is_over,
    line_of,
    mask_account_no,
    next_status,
    settlement_id_for,
    totals_of,
)
from tianpay.ports.clock import Clock
from tianpay.ports.members import PiiCipher
from tianpay.ports.settlements import SettlementPage
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = structlog.stdlib.get_logger(__name__)

MAX_PAGE_LIMIT = 100
# The vault kind the settlement account number is sealed under (its own, so a card number's
# ciphertext never opens as an account number and the other way round).
ACCOUNT_NO_KIND = "settlement_account_no"


class SettlementNotDue(DomainError):
    code = "settlement_not_due"


class ReconciliationUnfinished(DomainError):
    """The date's reconciliation has not finished at every required bank; ``banks`` names them."""

    code = "reconciliation_unfinished"

    def __init__(self, message: str, *, banks: tuple[str, ...]) -> None:
        super().__init__(message, param="date")
        self.banks = banks


@dataclass(frozen=True, slots=True)
class SettleOutcome:
    """What settling one merchant's date did: ``settlement`` is None when there was nothing to settle;
    ``created`` is False when the date had been settled before (a rerun)."""

    merchant_id: str
    settlement: Settlement | None
    created: bool


@dataclass(frozen=True, slots=True)
class SettleReport:
    business_date: date
    outcomes: tuple[SettleOutcome, ...]

    @property
    def settled(self) -> tuple[Settlement, ...]:
        return tuple(o.settlement for o in self.outcomes if o.settlement is not None)


Progress = Callable[[int, int, str], None]


# ---- settling ---------------------------------------------------------------------------------------


def check_reconciled(uow: UnitOfWork, business_date: date, required_banks: Iterable[str]) -> None:
    """Raises ReconciliationUnfinished naming every required bank whose reconciliation of the date
    has not finished."""
    finished = uow.reconciliation.finished_banks(business_date)
    missing = tuple(sorted(set(required_banks) - finished))
    if missing:
        raise ReconciliationUnfinished(
            f"the reconciliation of {business_date.isoformat()} has not finished at {', '.join(missing)}",
            banks=missing,
        )


def settle_date(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    business_date: date,
    required_banks: Iterable[str],
    merchant_id: str | None = None,
    progress: Progress | None = None,
) -> SettleReport:
    """Settles ``business_date`` for one merchant or for every active merchant, now.

    Refuses (SettlementNotDue, ReconciliationUnfinished) before touching anything; each merchant is
    then settled in its own unit of work, so one merchant's trouble leaves the others settled.
    """
    banks = tuple(required_banks)
    _check_due(business_date, clock.now())
    with uow_factory() as uow:
        check_reconciled(uow, business_date, banks)
        if merchant_id is not None:
            if uow.merchants.get(merchant_id) is None:
                raise NotFound(f"no merchant {merchant_id}", param="merchant")
            merchant_ids = [merchant_id]
        else:
            merchant_ids = [cycle.merchant_id for cycle in uow.settlements.merchant_cycles()]
    outcomes: list[SettleOutcome] = []
    for done, merchant in enumerate(merchant_ids, start=1):
        outcomes.append(settle_merchant(uow_factory, clock, merchant_id=merchant, business_date=business_date,
                                        required_banks=banks))  # fmt: skip
        if progress is not None:
            progress(done, len(merchant_ids), merchant)
    return SettleReport(business_date, tuple(outcomes))


def settle_merchant(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    merchant_id: str,
    business_date: date,
    required_banks: Iterable[str],
) -> SettleOutcome:
    """Settles one merchant's date: the entries on its pending account before the date's end that no
    settlement holds yet become the settlement's lines, and their net moves to ``available``.

    A negative net that ``available`` cannot cover is not moved: the settlement is recorded as
    ``carried`` without lines, and the entries wait for a later date (or for a rerun of this one).
    """
    now = clock.now()
    _check_due(business_date, now)
    with uow_factory() as uow:
        check_reconciled(uow, business_date, required_banks)
        existing = uow.settlements.of_date(merchant_id, business_date)
        if existing is not None and existing.status is not SettlementStatus.CARRIED:
            return SettleOutcome(merchant_id, existing, created=False)
        movements = uow.settlements.pending_movements(merchant_id, before=cutoff_of(business_date))
        lines = [line_of(movement) for movement in movements]
        if not lines and existing is None:
            return SettleOutcome(merchant_id, None, created=False)
        totals = totals_of(lines)
        if totals.net_minor < 0 and _available_minor(uow, merchant_id) < -totals.net_minor:
            carried = _record_carried(uow, merchant_id, business_date, existing, totals, now)
            uow.commit()
            log.info("settlement_carried", merchant_id=merchant_id, business_date=business_date.isoformat(),
                     net_minor=totals.net_minor)  # fmt: skip
            return SettleOutcome(merchant_id, carried, created=carried is not existing)
        settled = _record_settled(uow, merchant_id, business_date, existing, lines, totals, now)
        if settled is None:
            # Another worker settled this date between our reading and our insert: take its result.
            uow.rollback()
            with uow_factory() as again:
                return SettleOutcome(merchant_id, again.settlements.of_date(merchant_id, business_date), created=False)
        uow.commit()
    log.info("settlement_settled", settlement_id=settled.id, merchant_id=merchant_id,
             business_date=business_date.isoformat(), lines=totals.count, net_minor=totals.net_minor)  # fmt: skip
    return SettleOutcome(merchant_id, settled, created=True)


def _check_due(business_date: date, now: datetime) -> None:
    if not is_over(business_date, now):
        raise SettlementNotDue(
            f"{business_date.isoformat()} is not over yet in Asia/Shanghai; it can be settled from "
            f"{cutoff_of(business_date).isoformat()}",
            param="date",
        )


def _available_minor(uow: UnitOfWork, merchant_id: str) -> int:
    try:
        return uow.ledger.balance(merchant_available(merchant_id).code).minor
    except NotFound:
        return 0


def _new_settlement(merchant_id: str, business_date: date, totals: Totals, now: datetime) -> Settlement:
    return Settlement(
        id=settlement_id_for(merchant_id, business_date),
        merchant_id=merchant_id,
        business_date=business_date,
        status=SettlementStatus.CARRIED,
        currency=Currency.CNY,
        totals=totals,
        entry_id=None,
        payout_id=None,
        created_at=now,
        updated_at=now,
        settled_at=None,
        paid_at=None,
    )


def _record_carried(
    uow: UnitOfWork, merchant_id: str, business_date: date, existing: Settlement | None, totals: Totals, now: datetime
) -> Settlement:
    if existing is None:
        carried = _new_settlement(merchant_id, business_date, totals, now)
        if not uow.settlements.add(carried):
            raise Conflict(f"the settlement of {business_date.isoformat()} is being written by another worker")
        return carried
    # A rerun of a carried date that is still short: its totals are brought up to date.
    carried = replace(existing, totals=totals, updated_at=now)
    uow.settlements.replace(carried, expected=SettlementStatus.CARRIED)
    return carried


def _record_settled(
    uow: UnitOfWork,
    merchant_id: str,
    business_date: date,
    existing: Settlement | None,
    lines: list[SettlementLine],
    totals: Totals,
    now: datetime,
) -> Settlement | None:
    """Writes the settlement, its lines and its entry in the caller's unit of work; None when another
    worker got there first (the caller rolls back)."""
    base = existing or _new_settlement(merchant_id, business_date, totals, now)
    net = Money(totals.net_minor, base.currency)
    entry_id: str | None = None
    if not net.is_zero:
        entry = settlement_settled(
            settlement_id=base.id, merchant_id=merchant_id, business_date=business_date.isoformat(), net=net
        )
        entry_id = entry.id
    settled = replace(
        base,
        status=next_status(SettlementStatus.CARRIED, SettlementEvent.SETTLED),
        totals=totals,
        entry_id=entry_id,
        updated_at=now,
        settled_at=now,
    )
    if existing is None:
        if not uow.settlements.add(settled):
            return None
    elif not uow.settlements.replace(settled, expected=SettlementStatus.CARRIED):
        return None
    if uow.settlements.add_lines(settled.id, lines) != len(lines):
        # An entry was taken by another settlement of this merchant at the same moment (another
        # date on another worker): nothing here may commit, and the next run starts afresh.
        return None
    if entry_id is not None:
        try:
            uow.ledger.post(
                settlement_settled(
                    settlement_id=settled.id, merchant_id=merchant_id, business_date=business_date.isoformat(), net=net
                )
            )
        except InsufficientBalance:
            # ``available`` shrank (a payout) between the check and the entry; the date is tried again.
            return None
    return settled


# ---- the daily job -------------------------------------------------------------------------------------


def run_daily_settlement(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    now: datetime,
    *,
    required_banks: Iterable[str],
    done: MutableSet[tuple[str, date]],
) -> int:
    """Settles, for every active merchant, the business date its T+N makes due today (Shanghai).

    ``done`` remembers the (merchant, date) pairs this process has finished, so a tick after the
    day's work costs one query; a date whose reconciliation has not finished is tried again on the
    next tick. Returns how many settlements were created.
    """
    banks = tuple(required_banks)
    today = business_date_of(now)
    # Pairs older than any cycle can reach are forgotten, so a long-running worker stays small.
    for pair in [pair for pair in done if today - pair[1] > timedelta(days=MAX_CYCLE_DAYS + 1)]:
        done.discard(pair)
    with uow_factory() as uow:
        cycles = uow.settlements.merchant_cycles()
    due: dict[date, list[str]] = {}
    for cycle in cycles:
        business_date = business_date_due(today, max(cycle.cycle_days, 1))
        if (cycle.merchant_id, business_date) not in done:
            due.setdefault(business_date, []).append(cycle.merchant_id)
    created = 0
    for business_date, merchant_ids in sorted(due.items()):
        if not is_over(business_date, now):
            continue
        try:
            with uow_factory() as uow:
                check_reconciled(uow, business_date, banks)
        except ReconciliationUnfinished:
            continue
        for merchant_id in merchant_ids:
            try:
                outcome = settle_merchant(
                    uow_factory, clock, merchant_id=merchant_id, business_date=business_date, required_banks=banks
                )
            except DomainError:
                log.exception("settlement_failed", merchant_id=merchant_id, business_date=business_date.isoformat())
                continue
            done.add((merchant_id, business_date))
            created += int(outcome.created)
    return created


# ---- reading -------------------------------------------------------------------------------------------


def get_settlement(uow_factory: UnitOfWorkFactory, merchant_id: str, settlement_id: str) -> Settlement:
    with uow_factory() as uow:
        found = uow.settlements.get(settlement_id, merchant_id=merchant_id)
    if found is None:
        raise NotFound(f"no settlement {settlement_id}", param="id")
    return found


def list_settlements(
    uow_factory: UnitOfWorkFactory,
    merchant_id: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    starting_after: str | None = None,
    limit: int = 10,
) -> SettlementPage:
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidSettlementQuery(f"limit is 1 to {MAX_PAGE_LIMIT}", param="limit")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidSettlementQuery("from is after to", param="from")
    with uow_factory() as uow:
        return uow.settlements.page(
            merchant_id, date_from=date_from, date_to=date_to, starting_after=starting_after, limit=limit
        )


class InvalidSettlementQuery(DomainError):
    code = "parameter_invalid"


@dataclass(frozen=True, slots=True)
class Statement:
    """A settled date as the merchant downloads it: the settlement and every line."""

    settlement: Settlement
    lines: tuple[SettlementLine, ...]


def statement_of(uow_factory: UnitOfWorkFactory, merchant_id: str, business_date: date) -> Statement:
    """The statement of a settled date; NotFound for a date with no settlement or one carried over."""
    with uow_factory() as uow:
        found = uow.settlements.of_date(merchant_id, business_date)
        if found is None or found.status is SettlementStatus.CARRIED:
            raise NotFound(f"no settlement of {business_date.isoformat()}", param="date")
        return Statement(found, tuple(uow.settlements.lines(found.id)))


def settlement_view(settlement: Settlement) -> dict[str, object]:
    """The settlement as merchants see it (API responses and the ``settlement.paid`` webhook)."""
    totals = settlement.totals
    return {
        "id": settlement.id,
        "object": "settlement",
        "merchant_id": settlement.merchant_id,
        "business_date": settlement.business_date.isoformat(),
        "status": settlement.status.value,
        "currency": settlement.currency.code,
        "line_count": totals.count,
        "gross": totals.gross_minor,
        "refunds": totals.refunds_minor,
        "fees": totals.fees_minor,
        "net": totals.net_minor,
        "payout_id": settlement.payout_id,
        "created_at": iso_utc(settlement.created_at),
        "settled_at": None if settlement.settled_at is None else iso_utc(settlement.settled_at),
        "paid_at": None if settlement.paid_at is None else iso_utc(settlement.paid_at),
    }


# ---- payouts (called by the payout service) -------------------------------------------------------------


def mark_settlement_paid(uow: UnitOfWork, *, settlement_id: str, payout_id: str, now: datetime) -> None:
    """The settlement's payout succeeded: ``settled`` → ``paid`` and the ``settlement.paid`` event, in the
    caller's unit of work (the caller commits). Marking it paid again by the same payout is a no-op;
    by another payout, a Conflict."""
    found = uow.settlements.get(settlement_id)
    if found is None:
        raise NotFound(f"no settlement {settlement_id}", param="settlement_id")
    if found.status is SettlementStatus.PAID:
        if found.payout_id == payout_id:
            return
        raise Conflict(f"settlement {settlement_id} was paid by payout {found.payout_id}", param="payout_id")
    paid_status = next_status(found.status, SettlementEvent.PAID)
    if found.payout_id not in (None, payout_id):
        raise Conflict(f"settlement {settlement_id} belongs to payout {found.payout_id}", param="payout_id")
    if not uow.settlements.mark_paid(settlement_id, payout_id, now):
        raise Conflict(f"settlement {settlement_id} changed while it was being marked paid", param="settlement_id")
    paid = replace(found, status=paid_status, payout_id=payout_id, paid_at=now, updated_at=now)
    uow.outbox.add_event(found.merchant_id, EventType.SETTLEMENT_PAID, settlement_view(paid))


def mark_settlement_payout_failed(
    uow: UnitOfWork, *, settlement_id: str, payout_id: str, returned: bool, now: datetime
) -> bool:
    """The settlement's payout failed (or, ``returned``, bounced after success): ``settled`` (``paid``)
    → ``payout_failed``, in the caller's unit of work. The payouts service has already put the money
    back in ``available``; the settlement now waits to be paid again (docs/settlement.md). Returns
    False, changing nothing, when ``payout_id`` is not the settlement's payout or the settlement is
    already ``payout_failed`` (a repeated answer)."""
    found = uow.settlements.get(settlement_id)
    if found is None:
        raise NotFound(f"no settlement {settlement_id}", param="settlement_id")
    if found.payout_id != payout_id or found.status is SettlementStatus.PAYOUT_FAILED:
        return False
    event = SettlementEvent.PAYOUT_RETURNED if returned else SettlementEvent.PAYOUT_FAILED
    next_status(found.status, event)
    if not uow.settlements.mark_payout_failed(settlement_id, payout_id, expected=found.status, now=now):
        raise Conflict(f"settlement {settlement_id} changed while its payout failure was recorded",
                       param="settlement_id")
    log.info("settlement.payout_failed", settlement_id=settlement_id, payout_id=payout_id, returned=returned)
    return True


def settlement_account(uow: UnitOfWork, merchant_id: str, *, pii: PiiCipher) -> SettlementAccount | None:
    """The merchant's settlement account with the number unsealed, for sending a payout; None when it
    has none. Never log or render ``account_no``."""
    settings = uow.settlements.settings(merchant_id)
    if settings is None:
        return None
    sealed, bank, name = settings.account_no, settings.account_bank, settings.account_name
    if sealed is None or bank is None or name is None:
        return None
    account_no = pii.decrypt(ACCOUNT_NO_KIND, sealed.ciphertext, sealed.fingerprint)
    return SettlementAccount(merchant_id, bank, account_no, name, sealed.masked)


# ---- settings --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountInput:
    """A settlement account as the operator or merchant typed it (the number in clear, briefly)."""

    bank: str
    account_no: str = ""
    name: str = ""

    def __repr__(self) -> str:
        return f"AccountInput(bank={self.bank!r}, account_no='***', name={self.name!r})"


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What to change; None leaves a setting as it is."""

    cycle_days: int | None = None
    minimum_payout_minor: int | None = None
    auto_payout: bool | None = None
    account: AccountInput | None = None


def settlement_settings(uow_factory: UnitOfWorkFactory, clock: Clock, merchant_id: str) -> SettlementSettings:
    """The merchant's settings, or the defaults (T+1, no minimum, no automatic payout, no account)."""
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant")
        return uow.settlements.settings(merchant_id) or default_settings(merchant_id, clock.now())


def change_settlement_settings(
    uow_factory: UnitOfWorkFactory, clock: Clock, pii: PiiCipher, merchant_id: str, change: SettingsChange
) -> SettlementSettings:
    """Validates and applies ``change``; raises InvalidSettlementSettings (with the field as ``param``)
    or NotFound. Automatic payout needs a settlement account."""
    sealed = None if change.account is None else _seal_account(pii, change.account)
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant")
        now = clock.now()
        current = uow.settlements.settings(merchant_id) or default_settings(merchant_id, now)
        updated = replace(
            current,
            cycle_days=current.cycle_days if change.cycle_days is None else check_cycle_days(change.cycle_days),
            minimum_payout_minor=current.minimum_payout_minor
            if change.minimum_payout_minor is None
            else check_minimum_payout(change.minimum_payout_minor),
            auto_payout=current.auto_payout if change.auto_payout is None else change.auto_payout,
            updated_at=now,
        )
        if sealed is not None and change.account is not None:
            bank, account_no, name = sealed
            updated = replace(updated, account_bank=bank, account_no=account_no, account_name=name)
        if updated.auto_payout and not updated.has_account:
            raise InvalidSettlementSettings("automatic payout needs a settlement account", param="auto_payout")
        uow.settlements.save_settings(updated)
        uow.commit()
        return updated


def _seal_account(pii: PiiCipher, account: AccountInput) -> tuple[str, SealedPii, str]:
    bank = check_account_bank(account.bank)
    account_no = check_account_no(account.account_no)
    name = check_account_name(account.name)
    fingerprint = pii.fingerprint(ACCOUNT_NO_KIND, account_no)
    sealed = SealedPii(pii.encrypt(ACCOUNT_NO_KIND, account_no, fingerprint), fingerprint, mask_account_no(account_no))
    return bank, sealed, name


def settings_view(settings: SettlementSettings) -> Mapping[str, object]:
    """The settings as shown to people: the account number masked, never in clear."""
    return {
        "merchant_id": settings.merchant_id,
        "cycle_days": settings.cycle_days,
        "minimum_payout_minor": settings.minimum_payout_minor,
        "auto_payout": settings.auto_payout,
        "account": None
        if not settings.has_account or settings.account_no is None
        else {"bank": settings.account_bank, "account_no": settings.account_no.masked, "name": settings.account_name},
    }
