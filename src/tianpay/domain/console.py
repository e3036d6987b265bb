"""The operator console's rules: what each role may do, and what an audit record holds.

``PERMISSIONS`` is the one table the server consults for every console route and action (DESIGN.md
§10): a role not listed for a permission is refused with 403, whatever the page showed. Audit records
are values: who did what to which subject, why, and the subject before and after (small JSON objects).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from tianpay.domain.errors import DomainError
from tianpay.domain.operator import Role

MAX_REASON_CHARS: Final = 500


class Permission(enum.StrEnum):
    """One thing an operator can see or do in the console."""

    VIEW_OVERVIEW = "overview.view"
    VIEW_MERCHANTS = "merchants.view"
    ONBOARD_MERCHANT = "merchants.onboard"
    EDIT_FEE_PLAN = "merchants.fee_plan"
    EDIT_SETTLEMENT = "merchants.settlement"
    FREEZE_MERCHANT = "merchants.freeze"
    VIEW_MEMBERS = "members.view"
    UNMASK_MEMBER = "members.unmask"
    VIEW_CHANNELS = "channels.view"
    EDIT_CHANNELS = "channels.edit"
    VIEW_RECONCILIATION = "reconciliation.view"
    RESOLVE_EXCEPTION = "reconciliation.resolve"
    VIEW_SETTLEMENTS = "settlements.view"
    RETRY_PAYOUT_QUERY = "payouts.retry_query"
    RETRY_SETTLEMENT_PAYOUT = "settlements.retry_payout"
    # Approve or reject a payout held for review (人工审核); seeing the queue is VIEW_SETTLEMENTS.
    REVIEW_PAYOUTS = "payouts.review"
    VIEW_WEBHOOKS = "webhooks.view"
    RESEND_WEBHOOK = "webhooks.resend"
    VIEW_AUDIT = "audit.view"
    VIEW_OWN_AUDIT = "audit.view_own"
    VIEW_STATISTICS = "statistics.view"


_EVERYONE: Final = frozenset({Permission.VIEW_OVERVIEW, Permission.VIEW_MERCHANTS, Permission.VIEW_OWN_AUDIT})
_FINANCE: Final = frozenset(
    {
        Permission.EDIT_FEE_PLAN,
        Permission.EDIT_SETTLEMENT,
        Permission.VIEW_CHANNELS,
        Permission.VIEW_RECONCILIATION,
        Permission.RESOLVE_EXCEPTION,
        Permission.VIEW_SETTLEMENTS,
        Permission.RETRY_PAYOUT_QUERY,
        Permission.RETRY_SETTLEMENT_PAYOUT,
        Permission.REVIEW_PAYOUTS,
        Permission.VIEW_STATISTICS,
    }
)
_SUPPORT: Final = frozenset(
    {Permission.VIEW_MEMBERS, Permission.UNMASK_MEMBER, Permission.VIEW_WEBHOOKS, Permission.RESEND_WEBHOOK}
)

# The permission table. Admin may do everything; finance owns money (fees, settlement, reconciliation,
# payouts, statistics); support answers people (members, with an audited unmask, and webhooks). Every
# role sees the merchant list and its own audit trail; only admin sees everyone's.
PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.ADMIN: frozenset(Permission),
    Role.FINANCE: _EVERYONE | _FINANCE,
    Role.SUPPORT: _EVERYONE | _SUPPORT,
}


def is_allowed(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


class PermissionDenied(DomainError):
    code = "permission_denied"


class InvalidConsoleAction(DomainError):
    code = "console_action_invalid"


def check_reason(reason: str) -> str:
    """A manual action's reason: required, trimmed, at most 500 characters."""
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidConsoleAction("say why: a manual action needs a reason", param="reason")
    if len(cleaned) > MAX_REASON_CHARS:
        raise InvalidConsoleAction(f"a reason has at most {MAX_REASON_CHARS} characters", param="reason")
    return cleaned


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One manual action. ``before`` and ``after`` never hold a clear card, account or ID number."""

    id: str
    operator: str
    role: Role
    action: str
    subject_type: str
    subject_id: str
    reason: str
    before: Mapping[str, object]
    after: Mapping[str, object]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OperatorSession:
    token_hash: str
    username: str
    created_at: datetime
    expires_at: datetime

    def is_valid_at(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class ChannelSetting:
    """A bank's switch and cost as operators set them; ``cost_bps`` None keeps the configured cost."""

    bank: str
    is_enabled: bool
    cost_bps: int | None
    updated_by: str
    updated_at: datetime


class BankSwitchedOff(DomainError):
    """An operator switched the bank off in the console (a ``ChannelSetting`` not enabled): no new
    payment, top-up, withdrawal or payout goes to or through it. One code for every product, because
    the switch is one per bank (docs/console.md "Channels: switches and costs")."""

    code = "bank_switched_off"


MAX_COST_BPS: Final = 1_000


def check_cost_bps(cost_bps: int) -> int:
    if not 0 <= cost_bps <= MAX_COST_BPS:
        raise InvalidConsoleAction(f"a bank's cost is 0–{MAX_COST_BPS} bps", param="cost_bps")
    return cost_bps
