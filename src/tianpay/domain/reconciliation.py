"""Reconciliation (对账) rules: how one statement line and the platform record it names are judged.

Pure functions only: the service streams (line, record) pairs out of the database and asks this
module what each pair is (matched, 补单, amount mismatch, bank-only …), what a record the bank never
listed becomes (parked, then 短款), and which journal entry each outcome or operator resolution books
(docs/clearing.md, "Reconciliation").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

from tianpay.domain.errors import DomainError
from tianpay.domain.ledger import PLATFORM_SUSPENSE, AccountSpec, JournalEntry, Posting, bank_reserve
from tianpay.domain.money import Money
from tianpay.domain.posting_rules import (
    reconciliation_booked_to_suspense,
    reconciliation_difference,
    reconciliation_platform_only,
    suspense_resolved,
)

# A business date is the Asia/Shanghai calendar date (UTC+8, no daylight saving); the cutoff is
# midnight there (docs/clearing.md, "Business dates").
SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")

# The card switch settles POS money into the platform's HBB reserve, so its clearing file is checked
# item by item but moves no money of its own: there is no `bank:TCS:reserve` to book against.
CLEARING_ONLY_BANKS: Final = frozenset({"TCS"})
# The match reference given to a card-switch purchase and its reversal that are both on a statement and
# cancel out (a purchase whose answer never reached the platform, reversed by it: no money moved in
# the end and the platform booked nothing, docs/reconciliation.md "POS").
SWITCH_REVERSED_PREFIX: Final = "switch_reversed:"


def business_date_of(moment: datetime) -> date:
    """The Shanghai calendar date of an aware moment."""
    return moment.astimezone(SHANGHAI).date()


def business_day_bounds(business_date: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a Shanghai business date."""
    start = datetime(business_date.year, business_date.month, business_date.day, tzinfo=SHANGHAI)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


class LineKind(enum.StrEnum):
    """What a statement line says happened on the reserve (mirrors ports.statements.StatementItemKind)."""

    COLLECTION = "collection"
    REFUND = "refund"
    PAYOUT = "payout"
    PAYOUT_RETURN = "payout_return"
    FEE = "fee"
    OTHER = "other"


class RecordKind(enum.StrEnum):
    """The kind of platform record a line can name."""

    ATTEMPT = "attempt"  # a payment attempt at a bank (gateway, quick pay, direct debit, top-up, POS)
    REFUND = "refund"
    PAYOUT = "payout"


class RecordState(enum.StrEnum):
    """A platform record's status, reduced to what reconciliation needs to know."""

    SUCCEEDED = "succeeded"  # final and money moved (a payout later bounced counts: it did move)
    IN_FLIGHT = "in_flight"  # created, processing or unknown: the statement is the bank's answer
    FAILED = "failed"  # final and, as far as the platform knows, no money moved
    RETURNED = "returned"  # a payout that succeeded and then bounced (退票)


# Which record kind each line kind may name; anything else is a line the platform cannot attribute.
_RECORD_FOR_LINE: Final = {
    LineKind.COLLECTION: RecordKind.ATTEMPT,
    LineKind.REFUND: RecordKind.REFUND,
    LineKind.PAYOUT: RecordKind.PAYOUT,
    LineKind.PAYOUT_RETURN: RecordKind.PAYOUT,
}


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    """The platform's side of a line: ``amount_minor`` signed as the reserve moves (out < 0)."""

    kind: RecordKind
    record_id: str
    state: RecordState
    amount_minor: int
    # The record was found missing from an earlier statement and parked (a day-cut item).
    is_parked: bool = False


class Outcome(enum.StrEnum):
    """What reconciliation concluded about one line or one record (docs/clearing.md table)."""

    MATCHED = "matched"
    MATCHED_CROSS_DAY = "matched_cross_day"  # a record parked on an earlier date found on this statement
    MADE_GOOD = "made_good"  # 补单: the record was in flight; the statement is the bank's answer
    AMOUNT_MISMATCH = "amount_mismatch"
    BANK_ONLY = "bank_only"  # nothing the line can be attributed to (长款)
    BANK_ONLY_FAILED = "bank_only_failed"  # the line names a record the platform holds as failed
    DUPLICATE = "duplicate"  # a second line for a record another line already accounts for
    CHARGE = "charge"  # a bank charge not attached to an item
    PARKED = "parked"  # a record final on our side with no line yet: wait for the next statement
    SHORT = "short"  # 短款: still absent from the next statement


# Exception kinds that are not a line's outcome: a 补单 the owning service refused (nothing booked),
# and what an operator's ``book_to_suspense`` of such a line leaves in suspense.
MAKE_GOOD_REFUSED: Final = "make_good_refused"
BOOKED_TO_SUSPENSE: Final = "booked_to_suspense"
# What a service leaves for an operator when the bank's success arrives for a record whose line was
# booked to suspense and whose follow-up was already written off or recovered (docs/reconciliation.md,
# "After a follow-up is closed").
RECORDED_AFTER_CLOSE: Final = "recorded_after_close"

# Outcomes that open an exception for an operator.
EXCEPTION_OUTCOMES: Final = frozenset(
    {Outcome.AMOUNT_MISMATCH, Outcome.BANK_ONLY, Outcome.BANK_ONLY_FAILED, Outcome.DUPLICATE, Outcome.SHORT}
)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One line's outcome and the signed difference (bank − platform) it leaves in suspense."""

    outcome: Outcome
    difference_minor: int = 0


def judge_line(
    kind: LineKind, amount_minor: int, record: PlatformRecord | None, *, is_duplicate: bool = False
) -> Judgement:
    """Classifies a statement line against the record it names (None when it names none we know).

    Flat rules, first match wins: a charge line is a charge; a duplicate or a line with no record of
    its kind is bank-only for its whole amount; a record in flight with the same amount is made good
    (补单) and one with another amount cannot be (the payment service refuses it), so it is bank-only;
    a failed record is bank-only (money moved that the platform wrote off: an operator decides); a
    succeeded record matches when the amounts agree, else the difference is a mismatch.
    """
    if kind is LineKind.FEE:
        return Judgement(Outcome.CHARGE)
    if is_duplicate:
        return Judgement(Outcome.DUPLICATE, amount_minor)
    if record is None or _RECORD_FOR_LINE.get(kind) is not record.kind:
        return Judgement(Outcome.BANK_ONLY, amount_minor)
    if kind is LineKind.PAYOUT_RETURN:
        return _judge_payout_return(amount_minor, record)
    if record.state is RecordState.IN_FLIGHT:
        if amount_minor == record.amount_minor:
            return Judgement(Outcome.MADE_GOOD)
        return Judgement(Outcome.BANK_ONLY, amount_minor)
    if record.state is RecordState.FAILED:
        return Judgement(Outcome.BANK_ONLY_FAILED, amount_minor)
    if amount_minor != record.amount_minor:
        return Judgement(Outcome.AMOUNT_MISMATCH, amount_minor - record.amount_minor)
    return Judgement(Outcome.MATCHED_CROSS_DAY if record.is_parked else Outcome.MATCHED)


def _judge_payout_return(amount_minor: int, record: PlatformRecord) -> Judgement:
    # A bounce brings the payout's money back: it matches a payout the platform knows bounced, for
    # the payout's amount with the sign turned round. A payout we hold as paid (or still in flight)
    # whose bounce notice never came is made good from the statement, as a lost payment notice is.
    if record.state is RecordState.FAILED:
        return Judgement(Outcome.BANK_ONLY_FAILED, amount_minor)
    if amount_minor != -record.amount_minor:
        if record.state is RecordState.RETURNED:
            return Judgement(Outcome.AMOUNT_MISMATCH, amount_minor + record.amount_minor)
        return Judgement(Outcome.BANK_ONLY, amount_minor)
    if record.state is RecordState.RETURNED:
        return Judgement(Outcome.MATCHED)
    return Judgement(Outcome.MADE_GOOD)


def judge_absent_record(*, parked_on: date | None, business_date: date) -> Outcome:
    """A record final on our side with no statement line: parked the first time, short once a later
    statement (the next day's) has been reconciled without it either."""
    if parked_on is None or parked_on >= business_date:
        return Outcome.PARKED
    return Outcome.SHORT


# ---- what each outcome books ---------------------------------------------------------------------------


def line_difference_entry(*, bank: str, bank_ref: str, outcome: Outcome, difference_minor: int) -> JournalEntry | None:
    """The entry a bank-only, duplicate or mismatched line books: its difference against suspense.

    None for outcomes that move no money here (matched, made good: the payment service books it)
    and for a bank with no reserve of its own (the card switch).
    """
    if bank in CLEARING_ONLY_BANKS or difference_minor == 0:
        return None
    if outcome not in (Outcome.AMOUNT_MISMATCH, Outcome.BANK_ONLY, Outcome.BANK_ONLY_FAILED, Outcome.DUPLICATE):
        return None
    return reconciliation_difference(
        bank=bank, source_id=f"{bank}:{bank_ref}", difference=Money.cny(difference_minor), reason=outcome.value
    )


def short_entry(*, bank: str, record_id: str, amount_minor: int) -> JournalEntry | None:
    """The entry a confirmed 短款 books: the record's movement is taken back out of the reserve."""
    if bank in CLEARING_ONLY_BANKS or amount_minor == 0:
        return None
    return reconciliation_platform_only(bank=bank, record_id=record_id, amount=Money.cny(amount_minor))


def suspense_of(outcome: Outcome, difference_minor: int, *, bank: str) -> int:
    """What an exception leaves in ``platform:suspense`` (signed as the asset: + owed to the platform).

    A line with more money than the platform expected credits suspense (the platform owes it to
    someone): −difference. A short record debits it: the record's amount.
    """
    if bank in CLEARING_ONLY_BANKS:
        return 0
    return -difference_minor if outcome is not Outcome.SHORT else difference_minor


class ResolutionAction(enum.StrEnum):
    """How an operator closes an exception (docs/reconciliation.md, "Exceptions")."""

    # The difference is the platform's: a shortfall becomes a cost, a surplus reduces cost.
    WRITE_OFF = "write_off"
    # The money was found: the bank paid a shortfall back into the reserve, or a surplus was paid out
    # of the reserve to whom it belonged.
    RECOVERED = "recovered"
    # Nothing to book (the exception left nothing in suspense: the card switch's, a make-good the
    # payment service refused and a later query settled).
    DISMISS = "dismiss"
    # A refused 补单: the line's money is booked between the reserve and suspense, and a follow-up
    # exception (``booked_to_suspense``) holds it until it is written off or recovered.
    BOOK_TO_SUSPENSE = "book_to_suspense"
    # A follow-up whose record the owning service recorded after all (a query once the fee plan was
    # restored …): the service booked the money itself, so the suspense booking is taken back.
    RECORDED_SINCE = "recorded_since"


class IllegalResolution(DomainError):
    code = "resolution_invalid"


RESOLUTION_EVENTS: Final = {
    ResolutionAction.WRITE_OFF: "reconciliation_exception.written_off",
    ResolutionAction.RECOVERED: "reconciliation_exception.recovered",
    ResolutionAction.RECORDED_SINCE: "reconciliation_exception.recorded_since",
}


def resolution_entry(
    *, exception_id: str, bank: str, suspense_minor: int, action: ResolutionAction
) -> JournalEntry | None:
    """The entry that clears an exception's suspense balance; None for a dismissal.

    Raises IllegalResolution for a dismissal of an exception with money in suspense, or for moving
    money on an exception that left none there.
    """
    if action is ResolutionAction.BOOK_TO_SUSPENSE:
        raise IllegalResolution("only a refused make-good is booked to suspense", param="action")
    if action is ResolutionAction.DISMISS:
        if suspense_minor != 0:
            raise IllegalResolution("an exception with money in suspense is written off or recovered", param="action")
        return None
    if suspense_minor == 0:
        raise IllegalResolution("this exception left nothing in suspense: dismiss it", param="action")
    return suspense_resolved(
        event=RESOLUTION_EVENTS[action],
        exception_id=exception_id,
        bank=bank,
        suspense=Money.cny(suspense_minor),
        to_cost=action is ResolutionAction.WRITE_OFF,
    )


def check_resolution(
    *, kind: str, bank: str, action: ResolutionAction, is_recorded_since: bool
) -> None:
    """The rules that depend on what kind of exception it is and on its record now; raises IllegalResolution.

    A refused make-good (nothing booked, the reserve and the ledger apart) is booked to suspense, or
    dismissed only once its service recorded the line after all (a later query did the 补单). Its
    follow-up in suspense is resolved ``recorded_since`` exactly when the service has recorded it
    since (the money would otherwise be counted twice), and written off or recovered otherwise. The
    card switch keeps no reserve: its refused make-goods are dismissed (the money legs are on HBB's file).
    """
    if kind == MAKE_GOOD_REFUSED and bank not in CLEARING_ONLY_BANKS:
        if action is ResolutionAction.DISMISS and not is_recorded_since:
            raise IllegalResolution(
                "the bank moved this money and nothing is booked: book it to suspense (a dismissal is "
                "allowed only once its service has recorded it)", param="action",
            )
        if action is ResolutionAction.BOOK_TO_SUSPENSE and is_recorded_since:
            raise IllegalResolution("its service has recorded this line since: dismiss it", param="action")
        if action not in (ResolutionAction.BOOK_TO_SUSPENSE, ResolutionAction.DISMISS):
            raise IllegalResolution("nothing of this line is booked yet: book it to suspense first", param="action")
        return
    if action is ResolutionAction.BOOK_TO_SUSPENSE:
        raise IllegalResolution("only a refused make-good at a bank with a reserve is booked to suspense",
                                param="action")
    if kind == RECORDED_AFTER_CLOSE and action not in (ResolutionAction.WRITE_OFF, ResolutionAction.DISMISS):
        # What it holds in suspense is an earlier write-off to take back (through bank_cost); nothing
        # moved on the reserve that "recovered" could stand for. An undone record holds nothing: dismiss.
        raise IllegalResolution("a success recorded after its follow-up was closed is written off (taking the "
                                "earlier write-off back) or, when nothing is in suspense, dismissed", param="action")
    if action is ResolutionAction.RECORDED_SINCE and (kind != BOOKED_TO_SUSPENSE or not is_recorded_since):
        raise IllegalResolution("recorded_since is for a line booked to suspense whose service has recorded it "
                                "since", param="action")
    if kind == BOOKED_TO_SUSPENSE and is_recorded_since and action is not ResolutionAction.RECORDED_SINCE:
        raise IllegalResolution("its service has recorded this line since: resolve it as recorded_since",
                                param="action")


def actions_for(kind: str) -> tuple[ResolutionAction, ...]:
    """The resolutions that can apply to an exception of ``kind`` (what the console offers; the
    rules above still decide on the record as it is now)."""
    if kind == MAKE_GOOD_REFUSED:
        return (ResolutionAction.BOOK_TO_SUSPENSE, ResolutionAction.DISMISS)
    if kind == BOOKED_TO_SUSPENSE:
        return (ResolutionAction.WRITE_OFF, ResolutionAction.RECOVERED, ResolutionAction.RECORDED_SINCE)
    if kind == RECORDED_AFTER_CLOSE:
        return (ResolutionAction.WRITE_OFF, ResolutionAction.DISMISS)
    return (ResolutionAction.WRITE_OFF, ResolutionAction.RECOVERED, ResolutionAction.DISMISS)


def suspense_booking(*, exception_id: str, bank: str, statement_amount_minor: int) -> tuple[JournalEntry, int]:
    """The entry that books a refused make-good's line to suspense, and what it leaves there (signed as
    the asset: money in credits suspense, so the platform owes it: negative)."""
    if bank in CLEARING_ONLY_BANKS:
        raise IllegalResolution("the card switch keeps no reserve to book against", param="action")
    if statement_amount_minor == 0:
        raise IllegalResolution("a line of zero moved nothing: dismiss it", param="action")
    entry = reconciliation_booked_to_suspense(
        bank=bank, exception_id=exception_id, amount=Money.cny(statement_amount_minor)
    )
    return entry, -statement_amount_minor


def is_recorded_since(kind: RecordKind, state: RecordState, statement_amount_minor: int) -> bool:
    """Whether the owning service now holds what a statement line says (the 补单 happened after all).

    A payout's bounce line (money back in, positive) is recorded once the payout is returned; its
    payout line once it succeeded (or succeeded and then bounced); anything else once it succeeded.
    """
    if kind is RecordKind.PAYOUT:
        if statement_amount_minor > 0:
            return state is RecordState.RETURNED
        return state in (RecordState.SUCCEEDED, RecordState.RETURNED)
    return state is RecordState.SUCCEEDED


# ---- a success that arrives after its follow-up in suspense was closed -----------------------------------


class AfterClose(enum.StrEnum):
    """What the owning service does with a bank's success for a record whose statement line was booked
    to suspense and whose follow-up an operator has since closed (docs/reconciliation.md)."""

    # Written off: the line's money stayed in the reserve (money in) or left it (money out) and the
    # platform took it as its own gain or loss. The success is recorded for the merchant, but against
    # ``platform:suspense`` instead of the reserve, which the booking already moved; what that leaves in
    # suspense is the write-off to take back, for an operator.
    AGAINST_SUSPENSE = "against_suspense"
    # Recovered: the money went back where it came from (the payer was paid back, or a payout's or
    # refund's money came back into the reserve). The movement the bank reports was undone, so the
    # record fails (a refund or payout gives its money back) and the merchant is not credited twice.
    UNDONE = "undone"


# How each closing action of a ``booked_to_suspense`` follow-up is carried into the service's success.
_AFTER_CLOSE: Final = {
    ResolutionAction.WRITE_OFF.value: AfterClose.AGAINST_SUSPENSE,
    ResolutionAction.RECOVERED.value: AfterClose.UNDONE,
}

# The failure code a record gets when its bank success was undone by an operator's recovery.
UNDONE_BY_RECOVERY: Final = "undone_by_recovery"


def after_close(*, kind: str, status: ExceptionStatus, resolution: str | None) -> AfterClose | None:
    """What a service does with a success given the follow-up that names its record; None: record it as
    usual (no follow-up, one still open — reconciliation's ``recorded_since`` takes the booking back — or
    one resolved ``recorded_since`` already)."""
    if kind != BOOKED_TO_SUSPENSE or status is not ExceptionStatus.RESOLVED or resolution is None:
        return None
    return _AFTER_CLOSE.get(resolution)


def against_suspense(entry: JournalEntry, *, bank: str) -> JournalEntry | None:
    """The service's success entry with ``platform:suspense`` where it moves ``bank:B:reserve``.

    The same event and source, so the entry keeps its id and a replay stays a no-op. Legs on one account
    are netted: a late second success (reserve → suspense) becomes nothing at all, and None is returned.
    """
    reserve = bank_reserve(bank).code
    accounts: dict[str, AccountSpec] = {}
    net_minor: dict[str, int] = {}
    for posting in entry.postings:
        account = PLATFORM_SUSPENSE if posting.account.code == reserve else posting.account
        accounts.setdefault(account.code, account)
        net_minor[account.code] = net_minor.get(account.code, 0) + posting.amount.minor
    legs = tuple(
        Posting(accounts[code], Money(minor, accounts[code].currency)) for code, minor in net_minor.items() if minor
    )
    if not legs:
        return None
    return JournalEntry(entry.event, entry.source_id, legs, f"{entry.description} (against suspense)")


def after_close_suspense_minor(follow_up_suspense_minor: int, treatment: AfterClose) -> int:
    """What the service's recording leaves in suspense (signed as the asset), for the exception it opens.

    Against suspense, the success moves the follow-up's amount back through suspense: the opposite of
    what the follow-up held, i.e. exactly the write-off to take back. An undone record books nothing.
    """
    if treatment is AfterClose.UNDONE:
        return 0
    return -follow_up_suspense_minor


# ---- platform statuses as reconciliation sees them -----------------------------------------------------

_ATTEMPT_STATES: Final = {
    "created": RecordState.IN_FLIGHT,
    "processing": RecordState.IN_FLIGHT,
    "unknown": RecordState.IN_FLIGHT,
    "succeeded": RecordState.SUCCEEDED,
    "failed": RecordState.FAILED,
}
_REFUND_STATES: Final = _ATTEMPT_STATES
# A payout held for review was never sent: like ``created``, no statement line can be its.
_PAYOUT_STATES: Final = {**_ATTEMPT_STATES, "pending_review": RecordState.IN_FLIGHT, "returned": RecordState.RETURNED}
_STATES_BY_KIND: Final = {
    RecordKind.ATTEMPT: _ATTEMPT_STATES,
    RecordKind.REFUND: _REFUND_STATES,
    RecordKind.PAYOUT: _PAYOUT_STATES,
}


def record_state(kind: RecordKind, status: str) -> RecordState:
    """A record's status in reconciliation's terms; an unknown status counts as in flight (the
    statement then answers for it, the way a query would)."""
    return _STATES_BY_KIND[kind].get(status, RecordState.IN_FLIGHT)


class RunStatus(enum.StrEnum):
    """A reconciliation run: pending (created, waiting for its statement), running (claimed under a
    lease), finished (never run again: rerunning a finished date changes nothing)."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"


class ExceptionStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class ParkedStatus(enum.StrEnum):
    PARKED = "parked"
    MATCHED = "matched"
    SHORT = "short"
