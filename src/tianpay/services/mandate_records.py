"""What the platform records when a mandate ends outside the merchant's API, and the mandate's view.

Kept apart from ``services.mandates`` so that ``services.gateway`` (which receives the banks'
notifications, and which ``services.mandates`` imports for its debits) can apply a bank's
revocation without an import cycle.

A payer may revoke a mandate at the bank itself (JHB's app: ``mandate.revoke.notify``,
docs/banks/jhb.md). The bank's signed notice is final for the platform: the mandate becomes
``revoked`` and the merchant gets ``mandate.revoked``, exactly as for a revocation on the platform.
"""

from __future__ import annotations

import structlog

from tianpay.domain.mandate import Mandate, MandateEvent, MandateStatus
from tianpay.domain.notifications import EventType, iso_utc
from tianpay.ports.clock import Clock
from tianpay.ports.unit_of_work import UnitOfWorkFactory

log = structlog.stdlib.get_logger(__name__)


def mandate_view(mandate: Mandate) -> dict[str, object]:
    return {
        "id": mandate.id,
        "object": "mandate",
        "member_id": mandate.member_id,
        "mandate_no": mandate.merchant_mandate_no,
        "bank": mandate.bank,
        "card_number_masked": mandate.card_masked,
        "max_amount_per_debit": mandate.max_per_debit.minor,
        "max_amount_per_month": mandate.max_per_month.minor,
        "currency": mandate.max_per_debit.currency.code,
        "valid_until": mandate.valid_until.isoformat(),
        "purpose": mandate.purpose,
        "status": mandate.status.value,
        "failure_code": mandate.failure_code,
        "created_at": iso_utc(mandate.created_at),
    }


def apply_bank_revocation(uow_factory: UnitOfWorkFactory, clock: Clock, bank: str, mandate_id: str) -> bool:
    """Records that ``bank`` revoked the mandate at the payer's request; False asks the bank to resend.

    Idempotent: a mandate already revoked (on the platform, or by an earlier copy of the notice)
    or already expired changes nothing and is acknowledged, so the bank stops retrying. A notice
    about a mandate we do not have at that bank is refused (and logged, without the bank's number).
    """
    with uow_factory() as uow:
        current = uow.mandates.get_for_update(mandate_id)
        if current is None or current.bank != bank:
            log.warning("mandate.bank_revocation_for_unknown_mandate", bank=bank, mandate_id=mandate_id)
            return False
        if current.status is not MandateStatus.ACTIVE:
            # Revoked or expired already; applied/failed mandates were never usable at the bank.
            log.info("mandate.bank_revocation_no_change", mandate_id=mandate_id, status=current.status.value)
            return True
        moved = current.moved_to(MandateEvent.REVOKED, clock.now())
        if not uow.mandates.update(moved, expected=current.status):
            # Another writer moved it meanwhile: the bank's retry will find it final.
            return False
        uow.outbox.add_event(moved.merchant_id, EventType.MANDATE_REVOKED, mandate_view(moved))
        uow.commit()
    log.info("mandate.revoked_by_bank", mandate_id=mandate_id, bank=bank)
    return True
