"""The operator console over real HTTP on both databases: the permission table enforced by the server for
every role, sign-in with CSRF and lockout, and the audited actions (unmask, exception resolution, bank
switch, fee plan, freeze) with their effects on the ledger, the router and the merchant API.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.api.rfc9421_client import MerchantCredentials, PlatformKey, SignedClient
from tests.merchant_portal.conftest import id_number
from tianpay.adapters.webhooks import HttpxWebhookSender
from tianpay.channels.registry import QUICK_PAY_ROUTES
from tianpay.domain.console import Permission, is_allowed
from tianpay.domain.ledger import PLATFORM_SUSPENSE
from tianpay.domain.money import Money
from tianpay.domain.notifications import EventStatus, EventType
from tianpay.domain.operator import Role
from tianpay.domain.payment import InvalidBank, PaymentMethod, PaymentRequest
from tianpay.domain.payout import PayoutBatchRecord
from tianpay.domain.reconciliation import ExceptionStatus
from tianpay.services import audit, gateway, members, notifications, payments, reconciliation, routing, settlement
from tianpay.services.merchants import KeyRequest, KeyTools, NewMerchant, create_merchant
from tianpay.services.notifications import DispatchPolicy, dispatch_due_events

from .conftest import ConsoleBrowser, ConsoleServer, make_staff, signed_in, unattributable_exception

# A sample of pages, each with the permission the server demands for it.
PAGES: list[tuple[str, Permission]] = [
    ("/console", Permission.VIEW_OVERVIEW),
    ("/console/merchants", Permission.VIEW_MERCHANTS),
    ("/console/members", Permission.VIEW_MEMBERS),
    ("/console/channels", Permission.VIEW_CHANNELS),
    ("/console/reconciliation", Permission.VIEW_RECONCILIATION),
    ("/console/settlements", Permission.VIEW_SETTLEMENTS),
    ("/console/webhooks", Permission.VIEW_WEBHOOKS),
    ("/console/statistics", Permission.VIEW_STATISTICS),
    ("/console/audit", Permission.VIEW_OWN_AUDIT),
]
# A sample of actions, POSTed with a valid CSRF token: a refused role must get 403 before anything runs.
ACTIONS: list[tuple[str, Permission]] = [
    ("/console/merchants", Permission.ONBOARD_MERCHANT),
    ("/console/merchants/mch_none/fee-plan", Permission.EDIT_FEE_PLAN),
    ("/console/merchants/mch_none/freeze", Permission.FREEZE_MERCHANT),
    ("/console/members/mbr_none/unmask", Permission.UNMASK_MEMBER),
    ("/console/channels/ZZB", Permission.EDIT_CHANNELS),
    ("/console/reconciliation/exceptions/rex_none/resolve", Permission.RESOLVE_EXCEPTION),
    ("/console/payout-batches/pob_none/retry-query", Permission.RETRY_PAYOUT_QUERY),
    ("/console/settlements/stl_none/retry-payout", Permission.RETRY_SETTLEMENT_PAYOUT),
    ("/console/webhooks/mch_none/evt_none/resend", Permission.RESEND_WEBHOOK),
]


def audit_rows(server: ConsoleServer, action: str) -> list[audit.AuditRecord]:
    return [r for r in audit.audit_trail(server.container.uow, limit=200) if r.action == action]


@pytest.mark.parametrize("role", list(Role))
def test_the_server_refuses_every_page_and_action_outside_the_roles_permissions(
    console_server: ConsoleServer, role: Role
) -> None:
    client, _ = signed_in(console_server, role)
    for path, permission in PAGES:
        answer = client.get(path)
        expected = 200 if is_allowed(role, permission) else 403
        assert answer.status_code == expected, (role, path, answer.status_code)
    client.get("/console")
    for path, permission in ACTIONS:
        answer = client.post(path, {"reason": "matrix", "action": "dismiss", "field": "phone"})
        if is_allowed(role, permission):
            # Allowed: the action runs and is refused on its merits (nothing by that id), never with 403.
            assert answer.status_code in (303, 400, 404), (role, path, answer.status_code)
        else:
            assert answer.status_code == 403, (role, path, answer.status_code)
    client.close()


def test_a_support_user_gets_403_for_finance_pages_and_sees_no_link_to_them(console_server: ConsoleServer) -> None:
    client, _ = signed_in(console_server, Role.SUPPORT)
    home = client.get("/console")
    assert home.status_code == 200
    assert "/console/reconciliation" not in home.text
    assert client.get("/console/reconciliation").status_code == 403
    assert client.get("/console/settlements").status_code == 403
    assert client.get("/console/statistics").status_code == 403
    client.close()


def test_a_signed_out_browser_is_sent_to_the_login_page_and_a_forged_post_is_refused(
    console_server: ConsoleServer, browser: ConsoleBrowser
) -> None:
    answer = browser.get("/console/reconciliation")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login?next=")
    staff = make_staff(console_server.container, Role.ADMIN)
    assert browser.log_in(staff).status_code == 303
    assert browser.post("/console/channels/HBB", {"enabled": "no", "reason": "x"}, csrf=False).status_code == 403
    assert "HBB" not in routing.disabled_banks(console_server.container.uow)


def test_five_wrong_passwords_lock_an_operator_out_even_with_the_right_password(
    console_server: ConsoleServer, browser: ConsoleBrowser
) -> None:
    staff = make_staff(console_server.container, Role.FINANCE)
    for _ in range(5):
        assert browser.log_in(staff, "wrong password!!").status_code == 400
    locked = browser.log_in(staff)
    assert locked.status_code == 400
    assert "too many" in locked.text


def test_unmasking_a_member_needs_a_reason_shows_the_number_once_and_is_audited(
    console_server: ConsoleServer, tmp_path: Path
) -> None:
    container = console_server.container
    merchant = create_merchant(container.uow, _key_tools(console_server), NewMerchant("会员商户", KeyRequest()))
    number = id_number(4242)
    registration = members.ImplicitRegistration(merchant.merchant_id, "u-1", "张伟", number, "13912345678")
    member_id = members.register_for_merchant(container.uow, container.member_tools, registration).member.id
    client, staff = signed_in(console_server, Role.SUPPORT)

    listed = client.get("/console/members", id=member_id)
    assert listed.status_code == 200
    assert number not in listed.text
    refused = client.post(f"/console/members/{member_id}/unmask", {"field": "id_number", "reason": "  "})
    assert refused.status_code == 400
    assert all(r.subject_id != member_id for r in audit_rows(console_server, "member.unmask"))
    shown = client.post(f"/console/members/{member_id}/unmask", {"field": "id_number", "reason": "payer called"})

    assert shown.status_code == 200
    assert number in shown.text
    assert shown.headers["cache-control"] == "no-store"
    [row] = [r for r in audit_rows(console_server, "member.unmask") if r.subject_id == member_id]
    assert (row.operator, row.role, row.reason) == (staff.username, Role.SUPPORT, "payer called")
    assert number not in str(row.before) + str(row.after)
    client.close()


def test_a_finance_user_resolving_an_exception_books_a_ledger_entry_and_writes_an_audit_row(
    console_server: ConsoleServer, tmp_path: Path
) -> None:
    container = console_server.container
    opened = unattributable_exception(container, tmp_path)
    with container.uow() as uow:
        suspense_before = uow.ledger.balance(PLATFORM_SUSPENSE.code).minor
    client, staff = signed_in(console_server, Role.FINANCE)
    page = client.get("/console/reconciliation")
    assert opened.id in page.text

    answer = client.post(f"/console/reconciliation/exceptions/{opened.id}/resolve",
                         {"action": "recovered", "reason": "paid back to the payer"})

    assert answer.status_code == 303
    [resolved] = [e for e in reconciliation.exceptions_of(container.uow, run_id=opened.run_id)]
    assert resolved.status is ExceptionStatus.RESOLVED
    assert resolved.resolved_by == staff.username
    assert resolved.resolution_entry_id is not None
    with container.uow() as uow:
        assert uow.ledger.balance(PLATFORM_SUSPENSE.code).minor == suspense_before - opened.suspense_minor
    [row] = [r for r in audit_rows(console_server, "reconciliation.resolve") if r.subject_id == opened.id]
    assert row.operator == staff.username
    assert row.before["status"] == "open"
    assert row.after == {"status": "resolved", "resolution": "recovered",
                         "resolution_entry_id": resolved.resolution_entry_id}
    audit_page = client.get("/console/audit")
    assert opened.id in audit_page.text
    client.close()


def test_an_admin_switching_a_bank_off_takes_it_out_of_routing_and_the_switch_is_audited(
    console_server: ConsoleServer,
) -> None:
    container = console_server.container
    client, staff = signed_in(console_server, Role.ADMIN)
    client.get("/console/channels")
    answer = client.post("/console/channels/JHB", {"enabled": "no", "cost_bps": "45", "reason": "JHB maintenance"})
    assert answer.status_code == 303

    assert "JHB" in routing.disabled_banks(container.uow)
    assert [r.bank for r in routing.configured_routes(container.uow, QUICK_PAY_ROUTES)] == ["HBB"]
    merchant = create_merchant(container.uow, _key_tools(console_server), NewMerchant("路由商户", KeyRequest()))
    request = PaymentRequest(merchant_id=merchant.merchant_id, out_trade_no="route-1", amount=Money.cny(1_000),
                             method=PaymentMethod.CASHIER, subject="路由")
    payment = payments.create_payment(container.uow, container.clock, container.ids, request).payment
    with pytest.raises(InvalidBank):
        gateway.pay_at_bank(container.uow, container.clock, container.ids, container.channels,
                            gateway.GatewaySettings(base_url=console_server.base_url), payment.id, "JHB")
    [row] = [r for r in audit_rows(console_server, "channel.set") if r.subject_id == "JHB"][:1]
    assert (row.operator, row.after) == (staff.username, {"is_enabled": False, "cost_bps": 45})

    assert client.post("/console/channels/JHB", {"enabled": "yes", "reason": "back"}).status_code == 303
    assert "JHB" not in routing.disabled_banks(container.uow)
    assert [r.cost_bps for r in routing.configured_routes(container.uow, QUICK_PAY_ROUTES)] == [25, 30]
    client.close()


def test_a_frozen_merchant_is_refused_by_the_api_and_both_changes_are_audited(console_server: ConsoleServer) -> None:
    container = console_server.container
    created = create_merchant(container.uow, _key_tools(console_server), NewMerchant("冻结商户", KeyRequest()))
    assert created.key.private_key_path is not None
    credentials = MerchantCredentials(
        merchant_id=created.merchant_id, key_id=created.key.key_id,
        private_key_pem=created.key.private_key_path.read_bytes(), webhook_secret=created.webhook_secret,
    )
    key = container.platform_key
    api = SignedClient(console_server.base_url, credentials, PlatformKey(key.key_id, key.public_key_pem.encode()),
                       requests.Session())
    assert api.get("/v1/balance").status_code == 200
    client, _ = signed_in(console_server, Role.ADMIN)
    client.get(f"/console/merchants/{created.merchant_id}")

    frozen = client.post(f"/console/merchants/{created.merchant_id}/freeze", {"frozen": "yes", "reason": "fraud"})

    assert frozen.status_code == 303
    assert api.get("/v1/balance").status_code == 401
    client.get(f"/console/merchants/{created.merchant_id}")
    assert client.post(f"/console/merchants/{created.merchant_id}/freeze",
                       {"frozen": "no", "reason": "cleared"}).status_code == 303
    assert api.get("/v1/balance").status_code == 200
    rows = [r for r in audit.audit_trail(container.uow, limit=200) if r.subject_id == created.merchant_id]
    assert [(r.action, r.after["status"]) for r in rows] == [("merchant.unfreeze", "active"),
                                                            ("merchant.freeze", "suspended")]
    client.close()


def test_a_finance_user_edits_a_fee_plan_and_the_audit_row_holds_before_and_after(
    console_server: ConsoleServer,
) -> None:
    container = console_server.container
    created = create_merchant(container.uow, _key_tools(console_server), NewMerchant("费率商户", KeyRequest()))
    client, staff = signed_in(console_server, Role.FINANCE)
    page = client.get(f"/console/merchants/{created.merchant_id}")
    assert page.status_code == 200
    fields = {"reason": "contract renewal"}
    for method in PaymentMethod:
        fields[f"rate_{method.value}"] = "38"
        fields[f"min_{method.value}"] = "1"

    assert client.post(f"/console/merchants/{created.merchant_id}/fee-plan", fields).status_code == 303

    with container.uow() as uow:
        plan = uow.merchants.fee_plan(created.merchant_id)
    assert plan is not None
    assert {(r.rate_bps, r.minimum_minor) for r in plan.rates} == {(38, 1)}
    [row] = [r for r in audit_rows(console_server, "merchant.fee_plan") if r.subject_id == created.merchant_id]
    assert row.before["cashier"] == {"rate_bps": 60, "minimum_minor": 0}
    assert row.after["cashier"] == {"rate_bps": 38, "minimum_minor": 1}
    assert row.operator == staff.username
    bad = client.post(f"/console/merchants/{created.merchant_id}/fee-plan", {**fields, "rate_cashier": "20000"})
    assert bad.status_code == 400
    client.close()


def test_finance_sees_only_its_own_audit_rows_and_admin_sees_everyones(console_server: ConsoleServer) -> None:
    container = console_server.container
    created = create_merchant(container.uow, _key_tools(console_server), NewMerchant("审计商户", KeyRequest()))
    admin, _ = signed_in(console_server, Role.ADMIN)
    admin.get(f"/console/merchants/{created.merchant_id}")
    assert admin.post(f"/console/merchants/{created.merchant_id}/freeze",
                      {"frozen": "yes", "reason": "check"}).status_code == 303
    finance, _ = signed_in(console_server, Role.FINANCE)

    assert created.merchant_id not in finance.get("/console/audit").text
    assert created.merchant_id in admin.get("/console/audit").text
    admin.close()
    finance.close()


def _key_tools(server: ConsoleServer) -> KeyTools:
    container = server.container
    return KeyTools(container.ids, container.clock, container.key_issuer, container.vault)


def test_support_resends_a_failed_webhook_and_the_resend_is_audited(console_server: ConsoleServer) -> None:
    container = console_server.container
    created = create_merchant(container.uow, _key_tools(console_server),
                              NewMerchant("通知商户", KeyRequest(), webhook_url=console_server.base_url + "/nowhere"))
    with container.uow() as uow:
        event_id = uow.outbox.add_event(created.merchant_id, EventType.PAYMENT_SUCCEEDED, {"id": "pay_x"})
        uow.commit()
    sender = HttpxWebhookSender(timeout_s=5.0)
    try:
        # No retries: the endpoint's 404 fails the event at once, as the last of fifteen tries would.
        dispatch_due_events(container.uow, sender, container.clock, DispatchPolicy(retry_schedule_s=()),
                            worker_id="console-test", now=container.clock.now())
    finally:
        sender.close()
    assert notifications.get_event(container.uow, created.merchant_id, event_id).status is EventStatus.FAILED
    client, staff = signed_in(console_server, Role.SUPPORT)
    assert event_id in client.get("/console/webhooks").text

    answer = client.post(f"/console/webhooks/{created.merchant_id}/{event_id}/resend", {"reason": "merchant fixed"})

    assert answer.status_code == 303
    assert notifications.get_event(container.uow, created.merchant_id, event_id).status is EventStatus.PENDING
    [row] = [r for r in audit_rows(console_server, "webhook.resend") if r.subject_id == event_id]
    assert (row.operator, row.before["status"], row.after["status"]) == (staff.username, "failed", "pending")
    client.close()


def test_finance_brings_an_open_payout_batchs_query_forward_and_a_closed_batch_is_refused(
    console_server: ConsoleServer,
) -> None:
    container = console_server.container
    now = container.clock.now()
    later = now + timedelta(hours=1)
    with container.uow() as uow:
        uow.payouts.add_batch(PayoutBatchRecord("pob_console_open", "BCB", (), Money.cny(0), now, later, 3))
        uow.payouts.add_batch(PayoutBatchRecord("pob_console_done", "BCB", (), Money.cny(0), now, None, 1, now))
        uow.commit()
    client, staff = signed_in(console_server, Role.FINANCE)
    assert "pob_console_open" in client.get("/console/settlements").text

    answer = client.post("/console/payout-batches/pob_console_open/retry-query", {"reason": "bank says it paid"})

    assert answer.status_code == 303
    with container.uow() as uow:
        due = [batch.id for batch in uow.payouts.batches_due_for_query(container.clock.now(), limit=50)]
    assert "pob_console_open" in due
    [row] = [r for r in audit_rows(console_server, "payout_batch.retry_query") if r.subject_id == "pob_console_open"]
    assert (row.operator, row.before["query_count"]) == (staff.username, 3)
    assert client.post("/console/payout-batches/pob_console_done/retry-query",
                       {"reason": "again"}).status_code == 400
    client.close()


def test_finance_sets_the_settlement_cycle_and_account_and_the_audit_shows_only_the_masked_number(
    console_server: ConsoleServer,
) -> None:
    container = console_server.container
    created = create_merchant(container.uow, _key_tools(console_server), NewMerchant("结算商户", KeyRequest()))
    client, _ = signed_in(console_server, Role.FINANCE)
    client.get(f"/console/merchants/{created.merchant_id}")
    account_no = "6222020200112233445"

    answer = client.post(f"/console/merchants/{created.merchant_id}/settlement", {
        "cycle_days": "2", "minimum_payout": "100.00", "auto_payout": "on", "account_bank": "BCB",
        "account_no": account_no, "account_name": "结算商户", "reason": "signed contract",
    })

    assert answer.status_code == 303
    settings = settlement.settlement_settings(container.uow, container.clock, created.merchant_id)
    assert (settings.cycle_days, settings.minimum_payout_minor, settings.auto_payout) == (2, 10_000, True)
    assert settings.account_bank == "BCB"
    [row] = [r for r in audit_rows(console_server, "merchant.settlement") if r.subject_id == created.merchant_id]
    assert row.before["cycle_days"] == 1
    assert row.after["cycle_days"] == 2
    assert account_no not in str(row.after)
    page = client.get(f"/console/merchants/{created.merchant_id}")
    assert account_no not in page.text
    client.close()
