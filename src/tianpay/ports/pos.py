"""Ports for POS acquiring: terminals (with their sealed keys) and the terminals' transactions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tianpay.domain.pos import PosStatus, PosTransaction, ReversalStatus, Terminal


class TerminalRepository(Protocol):
    def add(self, terminal: Terminal, tmk_ciphertext: str) -> None: ...

    def get(self, tid: str) -> Terminal | None: ...

    def sealed_keys(self, tid: str) -> tuple[str, str | None, str | None] | None:
        """(TMK, PIK, MAK) as the vault sealed them; PIK and MAK are None before the first sign-on."""
        ...

    def set_working_keys(self, tid: str, pik_ciphertext: str, mak_ciphertext: str, now: datetime) -> None: ...

    def next_batch(self, tid: str, now: datetime) -> None: ...


class PosTransactionRepository(Protocol):
    def add(self, txn: PosTransaction, pan_ciphertext: str | None = None) -> bool:
        """Inserts; False when (tid, batch, STAN) exists already (a duplicate STAN)."""
        ...

    def get(self, tid: str, batch_no: int, stan: str) -> PosTransaction | None: ...

    def sealed_pan(self, txn_id: str) -> str | None: ...

    def get_by_id(self, txn_id: str) -> PosTransaction | None: ...

    def update(self, txn: PosTransaction, *, expected: PosStatus, now: datetime) -> bool: ...

    def set_reversal(
        self, txn_id: str, status: ReversalStatus, *, tries: int, next_at: datetime | None, now: datetime
    ) -> None: ...

    def in_batch(self, tid: str, batch_no: int) -> Sequence[PosTransaction]: ...

    def reversals_due(self, now: datetime, limit: int) -> Sequence[PosTransaction]: ...

    def next_switch_stan(self) -> str: ...
