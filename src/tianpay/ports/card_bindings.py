"""The card-binding and channel-health ports: where bindings, quick-pay attempts and breakers are kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tianpay.domain.card_binding import BindingStatus, CardBinding
from tianpay.domain.channel_health import ChannelHealth


@dataclass(frozen=True, slots=True)
class BindingTransition:
    binding_id: str
    from_status: str | None
    to_status: str
    event: str
    cause: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QuickPayAttempt:
    """Which bound card an attempt charged."""

    attempt_id: str
    payment_id: str
    binding_id: str
    member_id: str
    created_at: datetime


class CardBindingRepository(Protocol):
    def add(self, binding: CardBinding) -> None: ...

    def get(self, binding_id: str) -> CardBinding | None: ...

    def get_for_update(self, binding_id: str) -> CardBinding | None: ...

    def update(self, binding: CardBinding, *, expected: BindingStatus) -> bool:
        """Compare-and-set on ``status``: False when the row is no longer in ``expected``."""
        ...

    def of_member(self, member_id: str, statuses: Sequence[BindingStatus] = ()) -> Sequence[CardBinding]:
        """The member's bindings, oldest first (only those in ``statuses`` when given)."""
        ...

    def bound_with_fingerprint(self, member_id: str, card_fingerprint: str) -> CardBinding | None: ...

    def record_transition(self, transition: BindingTransition) -> None: ...

    def transitions_of(self, binding_id: str) -> Sequence[BindingTransition]: ...

    def add_quick_pay_attempt(self, attempt: QuickPayAttempt) -> None: ...

    def quick_pay_attempts_of(self, payment_id: str) -> Sequence[QuickPayAttempt]: ...


class ChannelHealthRepository(Protocol):
    def get(self, channel: str) -> ChannelHealth | None: ...

    def save(self, health: ChannelHealth, *, expected_version: int | None) -> bool:
        """Inserts (``expected_version`` None) or compare-and-sets on ``version``; False when another
        process wrote first. The stored version is ``expected_version + 1``."""
        ...

    def all(self) -> Sequence[ChannelHealth]: ...
