"""Repositories over ``terminals`` and ``pos_transactions`` (migration 0007_pos)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.pos import PosKind, PosStatus, PosTransaction, ReversalStatus, Terminal, TerminalStatus

from .tables import pos_transactions, terminals


class SqlTerminalRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, terminal: Terminal, tmk_ciphertext: str) -> None:
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(terminals).values(
                        tid=terminal.tid,
                        mid=terminal.mid,
                        merchant_id=terminal.merchant_id,
                        tmk_ciphertext=tmk_ciphertext,
                        batch_no=terminal.batch_no,
                        status=terminal.status.value,
                        created_at=terminal.created_at,
                        updated_at=terminal.created_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"terminal {terminal.tid} exists", param="tid") from None

    def get(self, tid: str) -> Terminal | None:
        row = self._connection.execute(select(terminals).where(terminals.c.tid == tid)).first()
        if row is None:
            return None
        return Terminal(
            row.tid, row.mid, row.merchant_id, row.batch_no, TerminalStatus(row.status), row.created_at,
            row.signed_on_at,
        )

    def sealed_keys(self, tid: str) -> tuple[str, str | None, str | None] | None:
        row = self._connection.execute(
            select(terminals.c.tmk_ciphertext, terminals.c.pik_ciphertext, terminals.c.mak_ciphertext).where(
                terminals.c.tid == tid
            )
        ).first()
        return None if row is None else (row.tmk_ciphertext, row.pik_ciphertext, row.mak_ciphertext)

    def set_working_keys(self, tid: str, pik_ciphertext: str, mak_ciphertext: str, now: datetime) -> None:
        self._connection.execute(
            update(terminals)
            .where(terminals.c.tid == tid)
            .values(pik_ciphertext=pik_ciphertext, mak_ciphertext=mak_ciphertext, signed_on_at=now, updated_at=now)
        )

    def next_batch(self, tid: str, now: datetime) -> None:
        # Batch numbers are n6 (F60.2) and wrap after 999999, as terminals wrap them.
        row = self._connection.execute(select(terminals.c.batch_no).where(terminals.c.tid == tid)).scalar_one()
        self._connection.execute(
            update(terminals).where(terminals.c.tid == tid).values(batch_no=row % 999_999 + 1, updated_at=now)
        )


class SqlPosTransactionRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, txn: PosTransaction, pan_ciphertext: str | None = None) -> bool:
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(pos_transactions).values(
                        **_row(txn), pan_ciphertext=pan_ciphertext, updated_at=txn.created_at
                    )
                )
        except IntegrityError:
            return False
        return True

    def get(self, tid: str, batch_no: int, stan: str) -> PosTransaction | None:
        row = self._connection.execute(
            select(pos_transactions).where(
                pos_transactions.c.tid == tid, pos_transactions.c.batch_no == batch_no, pos_transactions.c.stan == stan
            )
        ).first()
        return None if row is None else _txn(row)

    def sealed_pan(self, txn_id: str) -> str | None:
        return self._connection.execute(
            select(pos_transactions.c.pan_ciphertext).where(pos_transactions.c.id == txn_id)
        ).scalar_one_or_none()

    def get_by_id(self, txn_id: str) -> PosTransaction | None:
        row = self._connection.execute(select(pos_transactions).where(pos_transactions.c.id == txn_id)).first()
        return None if row is None else _txn(row)

    def update(self, txn: PosTransaction, *, expected: PosStatus, now: datetime) -> bool:
        values = _row(txn)
        for key in ("id", "tid", "batch_no", "stan", "created_at"):
            values.pop(key)
        result = self._connection.execute(
            update(pos_transactions)
            .where(pos_transactions.c.id == txn.id, pos_transactions.c.status == expected.value)
            .values(**values, updated_at=now)
        )
        return result.rowcount == 1

    def set_reversal(
        self, txn_id: str, status: ReversalStatus, *, tries: int, next_at: datetime | None, now: datetime
    ) -> None:
        self._connection.execute(
            update(pos_transactions)
            .where(pos_transactions.c.id == txn_id)
            .values(reversal_status=status.value, reversal_tries=tries, next_reversal_at=next_at, updated_at=now)
        )

    def in_batch(self, tid: str, batch_no: int) -> Sequence[PosTransaction]:
        rows = self._connection.execute(
            select(pos_transactions)
            .where(pos_transactions.c.tid == tid, pos_transactions.c.batch_no == batch_no)
            .order_by(pos_transactions.c.created_at)
        ).all()
        return [_txn(row) for row in rows]

    def reversals_due(self, now: datetime, limit: int) -> Sequence[PosTransaction]:
        rows = self._connection.execute(
            select(pos_transactions)
            .where(
                pos_transactions.c.reversal_status == ReversalStatus.PENDING.value,
                pos_transactions.c.next_reversal_at <= now,
            )
            .order_by(pos_transactions.c.next_reversal_at)
            .limit(limit)
        ).all()
        return [_txn(row) for row in rows]

    def next_switch_stan(self) -> str:
        # The switch keys a message by (F7, F11, F32): a random STAN with the second-resolution F7
        # makes a collision (answered 94 by TCS) negligible without a shared counter.
        return f"{secrets.randbelow(999_999) + 1:06d}"


def _row(txn: PosTransaction) -> dict[str, Any]:
    return {
        "id": txn.id,
        "tid": txn.tid,
        "batch_no": txn.batch_no,
        "stan": txn.stan,
        "kind": txn.kind.value,
        "amount_minor": txn.amount_minor,
        "card_masked": txn.card_masked,
        "status": txn.status.value,
        "response_code": txn.response_code,
        "rrn": txn.rrn,
        "auth_code": txn.auth_code,
        "switch_stan": txn.switch_stan,
        "transmitted_at": txn.transmitted_at,
        "original_stan": txn.original_stan,
        "payment_id": txn.payment_id,
        "bank": txn.bank,
        "reversal_status": txn.reversal_status.value,
        "reversal_tries": txn.reversal_tries,
        "created_at": txn.created_at,
    }


def _txn(row: Any) -> PosTransaction:
    return PosTransaction(
        id=row.id,
        tid=row.tid,
        batch_no=row.batch_no,
        stan=row.stan,
        kind=PosKind(row.kind),
        amount_minor=row.amount_minor,
        card_masked=row.card_masked,
        status=PosStatus(row.status),
        switch_stan=row.switch_stan,
        transmitted_at=row.transmitted_at,
        created_at=row.created_at,
        response_code=row.response_code,
        rrn=row.rrn,
        auth_code=row.auth_code,
        original_stan=row.original_stan,
        payment_id=row.payment_id,
        bank=row.bank,
        reversal_status=ReversalStatus(row.reversal_status),
        reversal_tries=row.reversal_tries,
    )
