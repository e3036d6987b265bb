"""The payout repository over ``payouts``, ``payout_batches`` and ``payout_transitions``.

Claims of work lock rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite every write
transaction is serialised (BEGIN IMMEDIATE), and the compare-and-set status writes make a second
claimer find nothing left to take.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.money import Currency, Money
from tianpay.domain.payout import Payout, PayoutBatchRecord, PayoutSource, PayoutStatus
from tianpay.ports.payout_records import PayoutTransition

from .tables import payout_batches, payout_review_thresholds, payout_transitions, payouts


class SqlPayoutRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, payout: Payout) -> None:
        # No savepoint around the insert (docs/performance.md, "Claim first, no savepoint"): none of
        # the callers catches the Conflict and goes on in the same transaction. A merchant's payout
        # (services.payouts.create_payout) is inserted inside run_idempotent's unit of work, whose
        # claim on (merchant, "payouts", out_payout_no) already stopped any second payout with that
        # number; settlement payouts and member withdrawals have no out_payout_no, and NULLs never
        # collide in the unique key. Should a duplicate reach the table anyway, the Conflict below
        # leaves PostgreSQL's transaction aborted and the unit of work rolls back (the settlement
        # job's ``except DomainError: continue`` leaves its unit of work, which is that rollback).
        try:
            self._connection.execute(insert(payouts).values(_payout_row(payout)))
        except IntegrityError as error:
            raise Conflict(
                f"out_payout_no {payout.out_payout_no!r} is already used by another payout", param="out_payout_no"
            ) from error

    def get(self, payout_id: str, *, merchant_id: str | None = None) -> Payout | None:
        query = select(payouts).where(payouts.c.id == payout_id)
        if merchant_id is not None:
            query = query.where(payouts.c.merchant_id == merchant_id)
        row = self._connection.execute(query).first()
        return None if row is None else _payout_from(row)

    def id_of_out_payout_no(self, merchant_id: str, out_payout_no: str) -> str | None:
        found = self._connection.execute(
            select(payouts.c.id).where(payouts.c.merchant_id == merchant_id, payouts.c.out_payout_no == out_payout_no)
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def get_for_update(self, payout_id: str) -> Payout | None:
        row = self._connection.execute(select(payouts).where(payouts.c.id == payout_id).with_for_update()).first()
        return None if row is None else _payout_from(row)

    def update(self, payout: Payout, *, expected: PayoutStatus) -> bool:
        result = self._connection.execute(
            update(payouts)
            .where(payouts.c.id == payout.id, payouts.c.status == expected.value)
            .values(
                status=payout.status.value,
                batch_id=payout.batch_id,
                bank_reference=payout.bank_reference,
                failure_code=payout.failure_code,
                failure_message=payout.failure_message,
                updated_at=payout.updated_at,
                succeeded_at=payout.succeeded_at,
                failed_at=payout.failed_at,
                returned_at=payout.returned_at,
            )
        )
        return result.rowcount == 1

    def of_merchant(self, merchant_id: str, *, limit: int, starting_after: str | None = None) -> Sequence[Payout]:
        p = payouts.c
        query = select(payouts).where(p.merchant_id == merchant_id)
        if starting_after is not None:
            anchor = self._connection.execute(
                select(p.created_at).where(p.id == starting_after, p.merchant_id == merchant_id)
            ).scalar_one_or_none()
            if anchor is not None:
                query = query.where((p.created_at < anchor) | ((p.created_at == anchor) & (p.id < starting_after)))
        rows = self._connection.execute(query.order_by(p.created_at.desc(), p.id.desc()).limit(limit))
        return [_payout_from(row) for row in rows]

    def of_member(self, member_id: str, *, limit: int) -> Sequence[Payout]:
        p = payouts.c
        rows = self._connection.execute(
            select(payouts).where(p.member_id == member_id).order_by(p.created_at.desc(), p.id.desc()).limit(limit)
        )
        return [_payout_from(row) for row in rows]

    def to_dispatch(self, *, limit: int) -> Sequence[Payout]:
        p = payouts.c
        query: Select[Any] = (
            select(payouts)
            .where(p.status == PayoutStatus.CREATED.value)
            .order_by(p.created_at, p.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_payout_from(row) for row in self._connection.execute(query)]

    def awaiting_review(self, *, limit: int) -> Sequence[Payout]:
        p = payouts.c
        rows = self._connection.execute(
            select(payouts)
            .where(p.status == PayoutStatus.PENDING_REVIEW.value)
            .order_by(p.created_at, p.id)
            .limit(limit)
        )
        return [_payout_from(row) for row in rows]

    def review_threshold(self, merchant_id: str) -> int | None:
        t = payout_review_thresholds.c
        found = self._connection.execute(
            select(t.threshold_minor).where(t.merchant_id == merchant_id)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def set_review_threshold(
        self, merchant_id: str, threshold_minor: int | None, *, updated_by: str, updated_at: datetime
    ) -> None:
        t = payout_review_thresholds.c
        # Delete then insert: one portable upsert for SQLite and PostgreSQL, inside the caller's
        # transaction (the console's audit row commits with it).
        self._connection.execute(delete(payout_review_thresholds).where(t.merchant_id == merchant_id))
        if threshold_minor is not None:
            self._connection.execute(
                insert(payout_review_thresholds).values(
                    merchant_id=merchant_id, threshold_minor=threshold_minor,
                    updated_by=updated_by, updated_at=updated_at,
                )
            )

    def in_batch(self, batch_id: str) -> Sequence[Payout]:
        rows = self._connection.execute(
            select(payouts).where(payouts.c.batch_id == batch_id).order_by(payouts.c.created_at, payouts.c.id)
        )
        return [_payout_from(row) for row in rows]

    def add_batch(self, batch: PayoutBatchRecord) -> None:
        self._connection.execute(
            insert(payout_batches).values(
                id=batch.id,
                bank=batch.bank,
                item_count=len(batch.payout_ids),
                total_minor=batch.total.minor,
                currency=batch.total.currency.code,
                query_count=batch.query_count,
                next_query_at=batch.next_query_at,
                created_at=batch.created_at,
                closed_at=batch.closed_at,
            )
        )

    def get_batch(self, batch_id: str) -> PayoutBatchRecord | None:
        row = self._connection.execute(select(payout_batches).where(payout_batches.c.id == batch_id)).first()
        return None if row is None else self._batch_from(row)

    def batches_due_for_query(self, now: datetime, *, limit: int) -> Sequence[PayoutBatchRecord]:
        b = payout_batches.c
        query: Select[Any] = (
            select(payout_batches)
            .where(b.closed_at.is_(None), b.next_query_at <= now)
            .order_by(b.next_query_at, b.id)
            .limit(limit)
        )
        if self._connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [self._batch_from(row) for row in self._connection.execute(query).all()]

    def reschedule_batch(self, batch_id: str, *, expected_query_count: int, next_query_at: datetime) -> bool:
        b = payout_batches.c
        result = self._connection.execute(
            update(payout_batches)
            .where(b.id == batch_id, b.query_count == expected_query_count, b.closed_at.is_(None))
            .values(next_query_at=next_query_at, query_count=expected_query_count + 1)
        )
        return result.rowcount == 1

    def close_batch(self, batch_id: str, now: datetime) -> bool:
        b = payout_batches.c
        result = self._connection.execute(
            update(payout_batches)
            .where(b.id == batch_id, b.closed_at.is_(None))
            .values(closed_at=now, next_query_at=None)
        )
        return result.rowcount == 1

    def record_transition(self, transition: PayoutTransition) -> None:
        self._connection.execute(
            insert(payout_transitions).values(
                payout_id=transition.payout_id,
                from_status=transition.from_status,
                to_status=transition.to_status,
                event=transition.event,
                cause=transition.cause,
                created_at=transition.created_at,
            )
        )

    def transitions_of(self, payout_id: str) -> Sequence[PayoutTransition]:
        t = payout_transitions.c
        rows = self._connection.execute(
            select(t.payout_id, t.from_status, t.to_status, t.event, t.cause, t.created_at)
            .where(t.payout_id == payout_id)
            .order_by(t.id)
        )
        return [PayoutTransition(*row) for row in rows]

    def in_flight_count(self, batch_id: str) -> int:
        p = payouts.c
        in_flight = [status.value for status in PayoutStatus if status.is_in_flight]
        return int(
            self._connection.execute(
                select(func.count()).select_from(payouts).where(p.batch_id == batch_id, p.status.in_(in_flight))
            ).scalar_one()
        )

    def _batch_from(self, row: Any) -> PayoutBatchRecord:
        p = payouts.c
        ids = self._connection.execute(
            select(p.id).where(p.batch_id == row.id).order_by(p.created_at, p.id)
        ).scalars().all()
        return PayoutBatchRecord(
            id=row.id,
            bank=row.bank,
            payout_ids=tuple(ids),
            total=Money(int(row.total_minor), Currency.parse(row.currency)),
            created_at=row.created_at,
            next_query_at=row.next_query_at,
            query_count=int(row.query_count),
            closed_at=row.closed_at,
        )


def _payout_row(payout: Payout) -> dict[str, object]:
    return {
        "id": payout.id,
        "source": payout.source.value,
        "merchant_id": payout.merchant_id,
        "member_id": payout.member_id,
        "out_payout_no": payout.out_payout_no,
        "amount_minor": payout.amount.minor,
        "currency": payout.amount.currency.code,
        "purpose": payout.purpose,
        "payee_bank": payout.payee_bank,
        "account_name": payout.account_name,
        "account_masked": payout.account_masked,
        "account_fingerprint": payout.account_fingerprint,
        "account_ciphertext": payout.account_sealed,
        "card_id": payout.card_id,
        "bank": payout.bank,
        "status": payout.status.value,
        "batch_id": payout.batch_id,
        "settlement_id": payout.settlement_id,
        "bank_reference": payout.bank_reference,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
        "created_at": payout.created_at,
        "updated_at": payout.updated_at,
        "succeeded_at": payout.succeeded_at,
        "failed_at": payout.failed_at,
        "returned_at": payout.returned_at,
    }


def _payout_from(row: Any) -> Payout:
    return Payout(
        id=row.id,
        source=PayoutSource(row.source),
        merchant_id=row.merchant_id,
        member_id=row.member_id,
        out_payout_no=row.out_payout_no,
        amount=Money(int(row.amount_minor), Currency.parse(row.currency)),
        purpose=row.purpose,
        payee_bank=row.payee_bank,
        account_name=row.account_name,
        account_masked=row.account_masked,
        account_fingerprint=row.account_fingerprint,
        account_sealed=row.account_ciphertext,
        card_id=row.card_id,
        bank=row.bank,
        status=PayoutStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        batch_id=row.batch_id,
        settlement_id=row.settlement_id,
        bank_reference=row.bank_reference,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
        succeeded_at=row.succeeded_at,
        failed_at=row.failed_at,
        returned_at=row.returned_at,
    )
