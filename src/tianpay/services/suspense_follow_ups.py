"""What the payment, refund and payout services consult before recording a bank's success.

A statement line whose 补单 was refused can be booked to ``platform:suspense`` by an operator, and the
follow-up exception that holds it closed ``write_off`` or ``recovered`` while the record is still in
flight. When the bank's success then arrives (a query, a late notification), the service must not move
the reserve a second time: this module finds such a closed follow-up and opens the exception that tells
an operator what was done instead (docs/reconciliation.md, "After a follow-up is closed"). It also knows
a success the bank tells again after a recovery undid it, so the repeat is not taken for new news.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from tianpay.domain.money import Money
from tianpay.domain.reconciliation import (
    RECORDED_AFTER_CLOSE,
    UNDONE_BY_RECOVERY,
    AfterClose,
    ExceptionStatus,
    after_close,
    after_close_suspense_minor,
)
from tianpay.ports.channels import ChannelResult, Outcome
from tianpay.ports.reconciliation import ReconciliationException
from tianpay.ports.unit_of_work import UnitOfWork

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClosedFollowUp:
    """A closed ``booked_to_suspense`` follow-up naming the record, and what the service does about it."""

    follow_up: ReconciliationException
    treatment: AfterClose

    @property
    def undone_message(self) -> str:
        """Why the bank's success is recorded as a failure: an operator recovered its line first."""
        return f"the bank's success came after {self.follow_up.id} was recovered"

    def undo(self, result: ChannelResult) -> ChannelResult:
        """The bank's success as the failure it became, for a refund or payout to record as such."""
        return replace(result, outcome=Outcome.FAILED, bank_code=UNDONE_BY_RECOVERY, bank_message=self.undone_message)


def closed_follow_up(uow: UnitOfWork, record_id: str, *, money_in: bool | None = None) -> ClosedFollowUp | None:
    """The record's latest follow-up in suspense if an operator closed it (written off or recovered).

    None when there is none, or when the latest is still open: reconciliation then takes the booking
    back itself (``recorded_since``) once the service has recorded the success as usual.
    ``money_in`` picks the line the bank's news is about by the way it moves the reserve: a payout has
    two lines that may each have been booked, its payment (money out) and its bounce (money back in), and
    each answer settles only its own (None: every line counts, for a record with one kind of line).
    """
    follow_ups = [
        follow_up for follow_up in uow.reconciliation.follow_ups_of(record_id)
        if money_in is None or ((follow_up.statement_amount_minor or 0) > 0) == money_in
    ]
    if not follow_ups:
        return None
    latest = follow_ups[-1]
    treatment = after_close(kind=latest.kind, status=latest.status, resolution=latest.resolution)
    return None if treatment is None else ClosedFollowUp(latest, treatment)


def repeats_undone_success(
    result: ChannelResult, *, failure_code: str | None, bank_reference: str | None, amount: Money
) -> bool:
    """Whether a bank's success about a record that failed ``undone_by_recovery`` is the undone success told
    again (a duplicated notification, the payer's browser coming back late): the same news, not the bank
    changing its mind, so it changes nothing and raises nothing.

    The failure code is only ever given by the after-close rule and its follow-up cannot reopen, so the
    record's own row is enough to know. The same success names the same amount and the bank reference the
    undoing kept (either may be absent from a message); another amount or reference is other news.
    """
    if result.outcome is not Outcome.SUCCEEDED or failure_code != UNDONE_BY_RECOVERY:
        return False
    if result.amount is not None and result.amount != amount:
        return False
    return result.bank_reference is None or bank_reference is None or result.bank_reference == bank_reference


def after_close_id(follow_up_id: str) -> str:
    """The id of the exception a success after a closed follow-up opens: derived, so it opens once."""
    return f"{follow_up_id}_r"


def open_recorded_after_close(
    uow: UnitOfWork, closed: ClosedFollowUp, *, entry_id: str | None, record_status: str, now: datetime
) -> None:
    """Opens, inside the service's unit of work, the exception that tells an operator the bank's success
    came after the follow-up was closed, and what it left in suspense (the write-off to take back)."""
    follow_up = closed.follow_up
    suspense_minor = after_close_suspense_minor(follow_up.suspense_minor, closed.treatment)
    uow.reconciliation.add_exception(
        ReconciliationException(
            id=after_close_id(follow_up.id), run_id=follow_up.run_id, bank=follow_up.bank,
            business_date=follow_up.business_date, kind=RECORDED_AFTER_CLOSE,
            dedupe_key=f"after_close:{follow_up.id}", suspense_minor=suspense_minor, status=ExceptionStatus.OPEN,
            created_at=now, record_id=follow_up.record_id, bank_ref=follow_up.bank_ref, line_no=follow_up.line_no,
            statement_amount_minor=follow_up.statement_amount_minor,
            platform_amount_minor=follow_up.platform_amount_minor, entry_id=entry_id,
        )
    )
    log.warning(
        "reconciliation.success_after_closed_follow_up", follow_up_id=follow_up.id, record_id=follow_up.record_id,
        closed_as=follow_up.resolution, treatment=closed.treatment.value, record_status=record_status,
    )
