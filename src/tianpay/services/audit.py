"""The audit log of the console: every manual action, who took it, why, and the subject before/after.

``record`` writes inside the caller's unit of work, so an action and its audit row commit together
(or neither does); ``record_after`` is for actions whose own service commits first (reconciliation's
``resolve_exception``): the row follows in a second transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tianpay.domain.console import AuditRecord, check_reason
from tianpay.domain.operator import Operator
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

# Audit rows are ids like every record (``aud_…``); the prefix lives here, beside its only user.
AUDIT_ID_PREFIX = "aud"
MAX_AUDIT_ROWS = 200


@dataclass(frozen=True, slots=True)
class Action:
    """What an operator did, before it is stamped with an id and a time."""

    operator: Operator
    action: str
    subject_type: str
    subject_id: str
    reason: str
    before: Mapping[str, object]
    after: Mapping[str, object]


def record(uow: UnitOfWork, clock: Clock, id_generator: IdGenerator, action: Action) -> AuditRecord:
    """Adds the audit row inside ``uow`` (the caller commits); the reason is required."""
    entry = AuditRecord(
        id=id_generator.new(AUDIT_ID_PREFIX),
        operator=action.operator.username,
        role=action.operator.role,
        action=action.action,
        subject_type=action.subject_type,
        subject_id=action.subject_id,
        reason=check_reason(action.reason),
        before=dict(action.before),
        after=dict(action.after),
        created_at=clock.now(),
    )
    uow.console.add_audit(entry)
    return entry


def record_after(
    uow_factory: UnitOfWorkFactory, clock: Clock, id_generator: IdGenerator, action: Action
) -> AuditRecord:
    with uow_factory() as uow:
        entry = record(uow, clock, id_generator, action)
        uow.commit()
    return entry


def audit_trail(
    uow_factory: UnitOfWorkFactory, *, operator: str | None = None, limit: int = 100
) -> Sequence[AuditRecord]:
    """The newest audit rows (all operators', or ``operator``'s own)."""
    with uow_factory() as uow:
        return uow.console.audit_records(operator=operator, limit=max(1, min(limit, MAX_AUDIT_ROWS)))

