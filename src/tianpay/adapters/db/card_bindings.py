"""Card bindings, their transitions, quick-pay attempts and channel breakers, on the unit of work's connection.

Status and breaker writes are compare-and-set (``WHERE status = ?`` / ``WHERE version = ?``), so two
processes racing on one binding or one breaker never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.card_binding import BindingStatus, CardBinding
from tianpay.domain.channel_health import BreakerState, ChannelHealth
from tianpay.ports.card_bindings import BindingTransition, QuickPayAttempt

from .tables import card_binding_transitions, card_bindings, channel_health, quick_pay_attempts


class SqlCardBindingRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, binding: CardBinding) -> None:
        self._connection.execute(insert(card_bindings).values(_row(binding)))

    def get(self, binding_id: str) -> CardBinding | None:
        row = self._connection.execute(select(card_bindings).where(card_bindings.c.id == binding_id)).first()
        return None if row is None else _binding_from(row)

    def get_for_update(self, binding_id: str) -> CardBinding | None:
        query = select(card_bindings).where(card_bindings.c.id == binding_id).with_for_update()
        row = self._connection.execute(query).first()
        return None if row is None else _binding_from(row)

    def update(self, binding: CardBinding, *, expected: BindingStatus) -> bool:
        values = _row(binding)
        values.pop("id")
        result = self._connection.execute(
            update(card_bindings)
            .where(card_bindings.c.id == binding.id, card_bindings.c.status == expected.value)
            .values(**values)
        )
        return result.rowcount == 1

    def of_member(self, member_id: str, statuses: Sequence[BindingStatus] = ()) -> Sequence[CardBinding]:
        query = select(card_bindings).where(card_bindings.c.member_id == member_id)
        if statuses:
            query = query.where(card_bindings.c.status.in_([status.value for status in statuses]))
        rows = self._connection.execute(query.order_by(card_bindings.c.created_at, card_bindings.c.id))
        return [_binding_from(row) for row in rows]

    def bound_with_fingerprint(self, member_id: str, card_fingerprint: str) -> CardBinding | None:
        row = self._connection.execute(
            select(card_bindings).where(
                card_bindings.c.member_id == member_id,
                card_bindings.c.card_fingerprint == card_fingerprint,
                card_bindings.c.status == BindingStatus.BOUND.value,
            )
        ).first()
        return None if row is None else _binding_from(row)

    def record_transition(self, transition: BindingTransition) -> None:
        self._connection.execute(
            insert(card_binding_transitions).values(
                binding_id=transition.binding_id,
                from_status=transition.from_status,
                to_status=transition.to_status,
                event=transition.event,
                cause=transition.cause,
                created_at=transition.created_at,
            )
        )

    def transitions_of(self, binding_id: str) -> Sequence[BindingTransition]:
        rows = self._connection.execute(
            select(card_binding_transitions)
            .where(card_binding_transitions.c.binding_id == binding_id)
            .order_by(card_binding_transitions.c.id)
        )
        return [
            BindingTransition(row.binding_id, row.from_status, row.to_status, row.event, row.cause, row.created_at)
            for row in rows
        ]

    def add_quick_pay_attempt(self, attempt: QuickPayAttempt) -> None:
        self._connection.execute(
            insert(quick_pay_attempts).values(
                attempt_id=attempt.attempt_id,
                payment_id=attempt.payment_id,
                binding_id=attempt.binding_id,
                member_id=attempt.member_id,
                created_at=attempt.created_at,
            )
        )

    def quick_pay_attempts_of(self, payment_id: str) -> Sequence[QuickPayAttempt]:
        rows = self._connection.execute(
            select(quick_pay_attempts)
            .where(quick_pay_attempts.c.payment_id == payment_id)
            .order_by(quick_pay_attempts.c.created_at)
        )
        return [
            QuickPayAttempt(row.attempt_id, row.payment_id, row.binding_id, row.member_id, row.created_at)
            for row in rows
        ]


class SqlChannelHealthRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, channel: str) -> ChannelHealth | None:
        row = self._connection.execute(select(channel_health).where(channel_health.c.channel == channel)).first()
        return None if row is None else _health_from(row)

    def save(self, health: ChannelHealth, *, expected_version: int | None) -> bool:
        values = {
            "state": health.state.value,
            "consecutive_failures": health.consecutive_failures,
            "window_started_at": health.window_started_at,
            "opened_at": health.opened_at,
            "probe_started_at": health.probe_started_at,
            "last_failure": health.last_failure,
            "updated_at": health.updated_at,
        }
        if expected_version is None:
            # A savepoint keeps the unit of work usable when another process inserted first.
            try:
                with self._connection.begin_nested():
                    self._connection.execute(insert(channel_health).values(channel=health.channel, version=0, **values))
            except IntegrityError:
                return False
            return True
        result = self._connection.execute(
            update(channel_health)
            .where(channel_health.c.channel == health.channel, channel_health.c.version == expected_version)
            .values(version=expected_version + 1, **values)
        )
        return result.rowcount == 1

    def all(self) -> Sequence[ChannelHealth]:
        rows = self._connection.execute(select(channel_health).order_by(channel_health.c.channel))
        return [_health_from(row) for row in rows]


def _row(binding: CardBinding) -> dict[str, Any]:
    return {
        "id": binding.id,
        "member_id": binding.member_id,
        "merchant_id": binding.merchant_id,
        "bank": binding.bank,
        "card_masked": binding.card_masked,
        "card_fingerprint": binding.card_fingerprint,
        "card_number_ciphertext": binding.card_number_sealed,
        "holder_ciphertext": binding.holder_sealed,
        "bank_token_ciphertext": binding.bank_token_sealed,
        "status": binding.status.value,
        "sms_tries": binding.sms_tries,
        "sms_expires_at": binding.sms_expires_at,
        "failure_code": binding.failure_code,
        "created_at": binding.created_at,
        "updated_at": binding.updated_at,
        "bound_at": binding.bound_at,
        "unbound_at": binding.unbound_at,
    }


def _binding_from(row: Any) -> CardBinding:
    return CardBinding(
        id=row.id,
        member_id=row.member_id,
        merchant_id=row.merchant_id,
        bank=row.bank,
        card_masked=row.card_masked,
        card_fingerprint=row.card_fingerprint,
        status=BindingStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        sms_expires_at=row.sms_expires_at,
        card_number_sealed=row.card_number_ciphertext,
        holder_sealed=row.holder_ciphertext,
        bank_token_sealed=row.bank_token_ciphertext,
        sms_tries=row.sms_tries,
        failure_code=row.failure_code,
        bound_at=row.bound_at,
        unbound_at=row.unbound_at,
    )


def _health_from(row: Any) -> ChannelHealth:
    return ChannelHealth(
        channel=row.channel,
        state=BreakerState(row.state),
        consecutive_failures=row.consecutive_failures,
        window_started_at=row.window_started_at,
        opened_at=row.opened_at,
        probe_started_at=row.probe_started_at,
        updated_at=row.updated_at,
        version=row.version,
        last_failure=row.last_failure,
    )
