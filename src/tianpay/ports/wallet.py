"""The wallet port: who paid a wallet payment, top-ups and their top-up-and-pay step, wallet history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tianpay.domain.wallet import ThenPayStatus, TopUp, WalletLine, WalletPayment


class WalletRepository(Protocol):
    def add_payment(self, payment: WalletPayment) -> None: ...

    def payment_of_attempt(self, attempt_id: str) -> WalletPayment | None: ...

    def add_top_up(self, top_up: TopUp) -> None: ...

    def top_up(self, payment_id: str) -> TopUp | None: ...

    def mark_credited(self, payment_id: str, now: datetime) -> bool:
        """created → credited (a compare-and-set); False when it was credited already."""
        ...

    def awaiting_then_pay(self, *, limit: int) -> Sequence[TopUp]:
        """Credited top-ups whose wallet payment is still to be made, oldest first."""
        ...

    def set_then_pay(self, payment_id: str, status: ThenPayStatus, failure: str | None = None) -> bool:
        """awaiting → ``status`` (a compare-and-set); False when another worker got there first."""
        ...

    def history(self, member_id: str, *, limit: int) -> Sequence[WalletLine]:
        """The wallet's movements, newest first, read from its ledger postings."""
        ...
