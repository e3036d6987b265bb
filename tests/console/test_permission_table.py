"""The console's permission table as a rule of the domain: what each role may do, pair by pair."""

from __future__ import annotations

import pytest

from tianpay.domain.console import InvalidConsoleAction, Permission, check_reason, is_allowed
from tianpay.domain.operator import Role

FINANCE_ONLY = {
    Permission.VIEW_RECONCILIATION, Permission.RESOLVE_EXCEPTION, Permission.VIEW_SETTLEMENTS,
    Permission.RETRY_PAYOUT_QUERY, Permission.RETRY_SETTLEMENT_PAYOUT, Permission.REVIEW_PAYOUTS,
    Permission.VIEW_STATISTICS, Permission.EDIT_FEE_PLAN, Permission.EDIT_SETTLEMENT,
    Permission.VIEW_CHANNELS,
}
SUPPORT_ONLY = {Permission.VIEW_MEMBERS, Permission.UNMASK_MEMBER, Permission.VIEW_WEBHOOKS, Permission.RESEND_WEBHOOK}
EVERYONE = {Permission.VIEW_OVERVIEW, Permission.VIEW_MERCHANTS, Permission.VIEW_OWN_AUDIT}


@pytest.mark.parametrize("permission", list(Permission))
def test_admin_may_do_everything_and_the_other_roles_exactly_their_share(permission: Permission) -> None:
    assert is_allowed(Role.ADMIN, permission)
    assert is_allowed(Role.FINANCE, permission) is (permission in FINANCE_ONLY | EVERYONE)
    assert is_allowed(Role.SUPPORT, permission) is (permission in SUPPORT_ONLY | EVERYONE)


def test_only_admin_onboards_freezes_switches_banks_and_reads_everyones_audit_trail() -> None:
    for permission in (Permission.ONBOARD_MERCHANT, Permission.FREEZE_MERCHANT, Permission.EDIT_CHANNELS,
                       Permission.VIEW_AUDIT):
        assert [role for role in Role if is_allowed(role, permission)] == [Role.ADMIN]


def test_a_manual_action_needs_a_reason_of_at_most_500_characters() -> None:
    assert check_reason("  payer called  ") == "payer called"
    with pytest.raises(InvalidConsoleAction):
        check_reason("   ")
    with pytest.raises(InvalidConsoleAction):
        check_reason("x" * 501)
