"""Crediting a wallet top-up, inside the unit of work that records its payment's success.

``services.payments`` calls ``credit_top_up`` when a payment to the top-up merchant succeeds, whatever
carried it (online banking today, quick pay from a bound card tomorrow), so the attempt's success,
the wallet credit and the top-up's state commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime

from tianpay.domain.errors import NotFound
from tianpay.domain.money import Money
from tianpay.domain.posting_rules import wallet_top_up_succeeded
from tianpay.domain.reconciliation import against_suspense as moved_to_suspense
from tianpay.ports.unit_of_work import UnitOfWork


def credit_top_up(
    uow: UnitOfWork, *, top_up_id: str, bank: str, amount: Money, now: datetime, against_suspense: bool = False
) -> None:
    """Credits the top-up's member with ``amount`` received at ``bank`` (Dr bank:B:reserve / Cr wallet).

    ``against_suspense``: the bank's line was booked to suspense and its follow-up written off, so the
    entry moves ``platform:suspense`` instead of the reserve (docs/reconciliation.md).

    A second call is a no-op: the entry id derives from the top-up id and the state is a
    compare-and-set. Raises NotFound for a payment that is not a top-up. Does not commit.
    """
    top_up = uow.wallet.top_up(top_up_id)
    if top_up is None:
        raise NotFound(f"payment {top_up_id} is not a wallet top-up", param="payment_id")
    entry = wallet_top_up_succeeded(top_up_id=top_up_id, member_id=top_up.member_id, bank=bank, amount=amount)
    if against_suspense:
        entry = moved_to_suspense(entry, bank=bank) or entry
    uow.ledger.post(entry)
    uow.wallet.mark_credited(top_up_id, now)
