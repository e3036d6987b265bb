"""What the operator console reads and does: sign-in with lockout, and every manual action, audited.

Each action checks the operator's permission itself (the routes check it too, first), calls the
service that owns the subject (merchants, settlement, reconciliation, notifications, payouts), and
writes an audit row with the reason and the subject before and after — in the same transaction when
the action is a write of this module, right after when the owning service commits on its own.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from tianpay.domain.channel_health import ChannelHealth
from tianpay.domain.console import (
    ChannelSetting,
    InvalidConsoleAction,
    OperatorSession,
    Permission,
    PermissionDenied,
    check_cost_bps,
    check_reason,
    is_allowed,
)
from tianpay.domain.errors import Conflict, NotFound
from tianpay.domain.member import Member
from tianpay.domain.merchant import FeePlan, FeeRate, Merchant, MerchantStatus
from tianpay.domain.merchant_user import LoginFailed, LoginLocked, lock_after_failure
from tianpay.domain.operator import Operator
from tianpay.domain.payout import Payout, PayoutEvent, check_review_threshold
from tianpay.domain.reconciliation import ResolutionAction
from tianpay.domain.settlement import Settlement, SettlementSettings, SettlementStatus
from tianpay.ports.channels import QuickPayRoute
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.console import BatchRow, FailedEvent
from tianpay.ports.members import PasswordHasher, PiiCipher
from tianpay.ports.payout_records import PayoutTransition
from tianpay.ports.payouts import PayoutDirectory
from tianpay.ports.reconciliation import ReconciliationException, ReconciliationRun
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services import audit, merchants, notifications, payouts, reconciliation, settlement
from tianpay.services.audit import Action
from tianpay.services.merchants import KeyTools, MerchantBalance, MerchantCreated, NewMerchant
from tianpay.services.pii import PiiKind, reveal

log = structlog.stdlib.get_logger(__name__)

DEFAULT_SESSION_LIFETIME = timedelta(hours=8)
LIST_LIMIT = 100
# A dummy hash checked for an unknown username, so timing does not tell which usernames exist.
_DUMMY_PASSWORD = "not-a-real-operator-password"  # noqa: S105


@dataclass(frozen=True, slots=True)
class ConsoleTools:
    """What the console's services need besides the database."""

    clock: Clock
    ids: IdGenerator
    hasher: PasswordHasher
    cipher: PiiCipher
    keys: KeyTools
    session_lifetime: timedelta = DEFAULT_SESSION_LIFETIME


def authorize(operator: Operator, permission: Permission) -> None:
    """Raises PermissionDenied unless the operator's role has ``permission`` (domain/console.py)."""
    if not is_allowed(operator.role, permission):
        raise PermissionDenied(f"the {operator.role.value} role may not do {permission.value}", param="permission")


# ---- sign-in ---------------------------------------------------------------------------------------------


def log_in(uow_factory: UnitOfWorkFactory, tools: ConsoleTools, username: str, password: str) -> Operator:
    """The operator when the password is right; raises LoginFailed, or LoginLocked during a lock.

    Five wrong passwords in a row lock the account for 15 minutes (the portal's rule); a locked
    account refuses even the right password, so guessing gains nothing during the lock.
    """
    now = tools.clock.now()
    with uow_factory() as uow:
        operator = uow.operators.get(username)
        stored = None if operator is None else uow.operators.password_hash(username)
        state = uow.console.login_state(username)
    if operator is None or stored is None or operator.is_disabled:
        tools.hasher.verify(tools.hasher.hash(_DUMMY_PASSWORD), password)
        raise LoginFailed("wrong username or password")
    if state.locked_until is not None and now < state.locked_until:
        raise LoginLocked("too many wrong passwords; try again later")
    is_right = tools.hasher.verify(stored, password)
    locked_until = None
    with uow_factory() as uow:
        if is_right:
            uow.console.reset_login_failures(username)
            uow.commit()
            return operator
        locked_until = lock_after_failure(uow.console.record_failed_login(username, now), now)
        if locked_until is not None:
            uow.console.lock(username, locked_until)
        uow.commit()
    log.info("console.login_refused", username=username, is_locked=locked_until is not None)
    if locked_until is not None:
        raise LoginLocked("too many wrong passwords; try again later")
    raise LoginFailed("wrong username or password")


def start_session(uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator) -> str:
    token = secrets.token_urlsafe(32)
    now = tools.clock.now()
    with uow_factory() as uow:
        uow.console.add_session(OperatorSession(_hash(token), operator.username, now, now + tools.session_lifetime))
        uow.commit()
    return token


def signed_in(uow_factory: UnitOfWorkFactory, tools: ConsoleTools, token: str | None) -> Operator | None:
    """Who a session cookie belongs to; None for a missing, unknown, expired or revoked one, or a
    disabled operator (disabling an operator ends its sessions at their next request)."""
    if not token or len(token) > 128:
        return None
    with uow_factory() as uow:
        session = uow.console.session(_hash(token))
        if session is None or not session.is_valid_at(tools.clock.now()):
            return None
        operator = uow.operators.get(session.username)
    return None if operator is None or operator.is_disabled else operator


def end_session(uow_factory: UnitOfWorkFactory, tools: ConsoleTools, token: str | None) -> None:
    if not token or len(token) > 128:
        return
    with uow_factory() as uow:
        uow.console.revoke_session(_hash(token), tools.clock.now())
        uow.commit()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---- merchants -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantDetail:
    merchant: Merchant
    fee_plan: FeePlan | None
    settings: SettlementSettings
    balance: MerchantBalance
    # Payouts of at least this many fen wait for review; None: the merchant's payouts are not reviewed.
    review_threshold_minor: int | None = None


def merchant_list(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[Merchant]:
    with uow_factory() as uow:
        return uow.console.merchants(limit=limit)


def merchant_detail(uow_factory: UnitOfWorkFactory, clock: Clock, merchant_id: str) -> MerchantDetail:
    with uow_factory() as uow:
        merchant = uow.merchants.get(merchant_id)
        plan = uow.merchants.fee_plan(merchant_id)
        threshold_minor = uow.payouts.review_threshold(merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
    return MerchantDetail(
        merchant, plan, settlement.settlement_settings(uow_factory, clock, merchant_id),
        merchants.merchant_balance(uow_factory, merchant_id), threshold_minor,
    )


def onboard_merchant(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, request: NewMerchant, *, reason: str
) -> MerchantCreated:
    """Creates a merchant (merchants.create_merchant) and audits it; the key material is shown once."""
    authorize(operator, Permission.ONBOARD_MERCHANT)
    check_reason(reason)
    created = merchants.create_merchant(uow_factory, tools.keys, request)
    audit.record_after(uow_factory, tools.clock, tools.ids, Action(
        operator, "merchant.onboard", "merchant", created.merchant_id, reason,
        before={}, after={"name": request.name.strip(), "fee_rate_bps": request.fee_rate_bps,
                          "key_id": created.key.key_id},
    ))
    return created


def change_fee_plan(
    uow_factory: UnitOfWorkFactory,
    tools: ConsoleTools,
    operator: Operator,
    merchant_id: str,
    rates: Mapping[str, tuple[int, int]],
    *,
    reason: str,
) -> FeePlan:
    """Replaces the merchant's fee plan; ``rates`` maps each method to (rate bps, minimum fen)."""
    authorize(operator, Permission.EDIT_FEE_PLAN)
    plan = FeePlan.of(merchant_id, (FeeRate(method, bps, minimum) for method, (bps, minimum) in rates.items()))
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        before = uow.merchants.fee_plan(merchant_id)
        uow.merchants.set_fee_plan(plan)
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "merchant.fee_plan", "merchant", merchant_id, reason,
            before=_plan_view(before), after=_plan_view(plan),
        ))
        uow.commit()
    return plan


def _plan_view(plan: FeePlan | None) -> dict[str, object]:
    if plan is None:
        return {}
    return {rate.method: {"rate_bps": rate.rate_bps, "minimum_minor": rate.minimum_minor} for rate in plan.rates}


def change_settlement(
    uow_factory: UnitOfWorkFactory,
    tools: ConsoleTools,
    operator: Operator,
    merchant_id: str,
    change: settlement.SettingsChange,
    *,
    reason: str,
) -> SettlementSettings:
    """Changes the cycle, minimum, automatic payout or account (settlement's own validation applies)."""
    authorize(operator, Permission.EDIT_SETTLEMENT)
    check_reason(reason)
    before = settlement.settlement_settings(uow_factory, tools.clock, merchant_id)
    after = settlement.change_settlement_settings(uow_factory, tools.clock, tools.cipher, merchant_id, change)
    audit.record_after(uow_factory, tools.clock, tools.ids, Action(
        operator, "merchant.settlement", "merchant", merchant_id, reason,
        before=_settings_view(before), after=_settings_view(after),
    ))
    return after


def _settings_view(settings: SettlementSettings) -> dict[str, object]:
    view = dict(settlement.settings_view(settings))
    view.pop("merchant_id", None)
    return view


def set_payout_review_threshold(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, merchant_id: str,
    threshold_minor: int | None, *, reason: str,
) -> int | None:
    """Sets the merchant's payout review threshold (None: no review) and audits it in one transaction.

    It is a settlement setting (who decides how much leaves unchecked), so it takes EDIT_SETTLEMENT.
    It applies to payouts created from now on; payouts already held stay held until decided.
    """
    authorize(operator, Permission.EDIT_SETTLEMENT)
    threshold_minor = check_review_threshold(threshold_minor)
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        before = uow.payouts.review_threshold(merchant_id)
        uow.payouts.set_review_threshold(merchant_id, threshold_minor, updated_by=operator.username,
                                         updated_at=tools.clock.now())
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "merchant.payout_review", "merchant", merchant_id, reason,
            before={"review_threshold_minor": before}, after={"review_threshold_minor": threshold_minor},
        ))
        uow.commit()
    return threshold_minor


def set_merchant_frozen(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, merchant_id: str, *, is_frozen: bool,
    reason: str,
) -> Merchant:
    """Freezes (suspends: the API refuses its signatures) or unfreezes a merchant; repeating is a no-op."""
    authorize(operator, Permission.FREEZE_MERCHANT)
    wanted = MerchantStatus.SUSPENDED if is_frozen else MerchantStatus.ACTIVE
    with uow_factory() as uow:
        merchant = uow.merchants.get(merchant_id)
        if merchant is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        if merchant.status is wanted:
            return merchant
        if not uow.console.set_merchant_status(merchant_id, wanted, expected=merchant.status):
            raise Conflict(f"merchant {merchant_id} changed meanwhile; try again", param="merchant_id")
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "merchant.freeze" if is_frozen else "merchant.unfreeze", "merchant", merchant_id, reason,
            before={"status": merchant.status.value}, after={"status": wanted.value},
        ))
        uow.commit()
    with uow_factory() as uow:
        updated = uow.merchants.get(merchant_id)
    assert updated is not None
    return updated


# ---- members ---------------------------------------------------------------------------------------------

UNMASKABLE: Mapping[str, PiiKind] = {"id_number": PiiKind.ID_NUMBER, "phone": PiiKind.PHONE}


def member_list(uow_factory: UnitOfWorkFactory, *, limit: int = 50) -> Sequence[Member]:
    """The newest members, masked numbers only (``Member`` holds them sealed)."""
    with uow_factory() as uow:
        found = [uow.members.get(member_id) for member_id in uow.console.member_ids(limit=limit)]
    return [member for member in found if member is not None]


def member_of(uow_factory: UnitOfWorkFactory, member_id: str) -> Member:
    with uow_factory() as uow:
        member = uow.members.get(member_id)
    if member is None:
        raise NotFound(f"no member {member_id}", param="member_id")
    return member


def unmask_member(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, member_id: str, field: str, *,
    reason: str,
) -> str:
    """A member's number in clear, once, for an operator who says why; the audit row commits first,
    so a number is never shown without its record. Never log what this returns."""
    authorize(operator, Permission.UNMASK_MEMBER)
    kind = UNMASKABLE.get(field)
    if kind is None:
        raise InvalidConsoleAction(f"field must be one of {', '.join(UNMASKABLE)}", param="field")
    with uow_factory() as uow:
        member = uow.members.get(member_id)
        if member is None:
            raise NotFound(f"no member {member_id}", param="member_id")
        sealed = member.id_number if kind is PiiKind.ID_NUMBER else member.phone
        if sealed is None:
            raise NotFound(f"member {member_id} has no {field}", param="field")
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "member.unmask", "member", member_id, reason,
            before={"field": field, "masked": sealed.masked}, after={"field": field, "shown": True},
        ))
        uow.commit()
    return reveal(tools.cipher, kind, sealed)


# ---- channels --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One bank as the channels page shows it: its switch, its costs, and its breakers' health."""

    bank: str
    is_enabled: bool
    configured_cost_bps: int | None
    cost_bps: int | None
    breakers: tuple[ChannelHealth, ...]


def channels_overview(
    uow_factory: UnitOfWorkFactory, banks: Sequence[str], routes: Sequence[QuickPayRoute]
) -> list[ChannelRow]:
    configured = {route.bank: route.cost_bps for route in routes}
    with uow_factory() as uow:
        settings = {setting.bank: setting for setting in uow.channel_settings.all()}
        health = list(uow.channel_health.all())
    rows = []
    for bank in sorted(set(banks) | set(settings)):
        setting = settings.get(bank)
        cost = setting.cost_bps if setting is not None and setting.cost_bps is not None else configured.get(bank)
        breakers = tuple(h for h in health if h.channel.split(".", 1)[0].upper() == bank)
        rows.append(ChannelRow(bank, setting is None or setting.is_enabled, configured.get(bank), cost, breakers))
    return rows


def set_channel(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, bank: str, *, is_enabled: bool,
    cost_bps: int | None, reason: str,
) -> ChannelSetting:
    """Switches a bank on or off for every route and sets (or clears, with None) its cost override."""
    authorize(operator, Permission.EDIT_CHANNELS)
    bank = bank.strip().upper()
    if not bank.isalpha() or len(bank) > 10:
        raise InvalidConsoleAction("a bank is its code, e.g. HBB", param="bank")
    setting = ChannelSetting(
        bank, is_enabled, None if cost_bps is None else check_cost_bps(cost_bps), operator.username, tools.clock.now()
    )
    with uow_factory() as uow:
        before = uow.channel_settings.get(bank)
        uow.channel_settings.save(setting)
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "channel.set", "bank", bank, reason,
            before={} if before is None else {"is_enabled": before.is_enabled, "cost_bps": before.cost_bps},
            after={"is_enabled": setting.is_enabled, "cost_bps": setting.cost_bps},
        ))
        uow.commit()
    log.warning("console.channel_set", bank=bank, is_enabled=is_enabled, operator=operator.username)
    return setting


# ---- reconciliation --------------------------------------------------------------------------------------


def reconciliation_runs(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[ReconciliationRun]:
    with uow_factory() as uow:
        return uow.reconciliation.runs(limit=limit)


def resolve_exception(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, exception_id: str, *, action: str,
    reason: str,
) -> ReconciliationException:
    """Resolves through reconciliation.resolve_exception (the ledger entry is its), then audits.

    A repeat of the same resolution is a no-op there and is not audited twice here.
    """
    authorize(operator, Permission.RESOLVE_EXCEPTION)
    cleaned = check_reason(reason)
    with uow_factory() as uow:
        before = uow.reconciliation.get_exception(exception_id)
    if before is None:
        raise NotFound(f"no reconciliation exception {exception_id}", param="exception_id")
    resolved = reconciliation.resolve_exception(
        uow_factory, tools.clock, exception_id, action=action, operator=operator.username, reason=cleaned
    )
    if before.status is not resolved.status:
        audit.record_after(uow_factory, tools.clock, tools.ids, Action(
            operator, "reconciliation.resolve", "reconciliation_exception", exception_id, cleaned,
            before={"status": before.status.value, "kind": before.kind, "bank": before.bank,
                    "suspense_minor": before.suspense_minor},
            after={"status": resolved.status.value, "resolution": resolved.resolution,
                   "resolution_entry_id": resolved.resolution_entry_id,
                   **({"follow_up_id": reconciliation.follow_up_id(exception_id)}
                      if resolved.resolution == ResolutionAction.BOOK_TO_SUSPENSE.value else {})},
        ))
    return resolved


# ---- settlements, payout batches, webhooks ----------------------------------------------------------------


def settlement_list(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[Settlement]:
    with uow_factory() as uow:
        return uow.console.settlements(limit=limit)


def payout_batch_list(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[BatchRow]:
    with uow_factory() as uow:
        return uow.console.payout_batches(limit=limit)


def retry_batch_query(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, batch_id: str, *, reason: str
) -> None:
    """Brings an open batch's next bank query forward to now, for the worker's next pass.

    The batch is queried, never re-sent (DESIGN.md §7): its outcome may be unknown, and a second
    submission could pay twice.
    """
    authorize(operator, Permission.RETRY_PAYOUT_QUERY)
    now = tools.clock.now()
    with uow_factory() as uow:
        batch = uow.payouts.get_batch(batch_id)
        if batch is None:
            raise NotFound(f"no payout batch {batch_id}", param="batch_id")
        if not uow.console.requery_batch_now(batch_id, now):
            raise Conflict(f"payout batch {batch_id} is closed: nothing left to query", param="batch_id")
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, "payout_batch.retry_query", "payout_batch", batch_id, reason,
            before={"next_query_at": None if batch.next_query_at is None else batch.next_query_at.isoformat(),
                    "query_count": batch.query_count},
            after={"next_query_at": now.isoformat()},
        ))
        uow.commit()


def retry_settlement_payout(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, settlement_id: str, *,
    directory: PayoutDirectory, reason: str,
) -> Payout:
    """Pays a settlement whose payout failed or bounced again, to the merchant's current settlement
    account (payouts.retry_settlement_payout: a new payout, attached by compare-and-set), then audits.

    The payouts service commits the new payout with its submit entry on its own, so the audit row follows
    in the next transaction; a second retry of the same settlement is a Conflict there and is not audited.
    """
    authorize(operator, Permission.RETRY_SETTLEMENT_PAYOUT)
    cleaned = check_reason(reason)
    with uow_factory() as uow:
        before = uow.settlements.get(settlement_id)
    if before is None:
        raise NotFound(f"no settlement {settlement_id}", param="settlement_id")
    retried = payouts.retry_settlement_payout(
        uow_factory, tools.clock, tools.ids, directory, tools.cipher, settlement_id
    )
    assert retried is not None
    audit.record_after(uow_factory, tools.clock, tools.ids, Action(
        operator, "settlement.retry_payout", "settlement", settlement_id, cleaned,
        before={"status": before.status.value, "payout_id": before.payout_id, "net_minor": before.totals.net_minor},
        after={"status": SettlementStatus.SETTLED.value, "payout_id": retried.id,
               "account": {"bank": retried.payee_bank, "account_no": retried.account_masked}},
    ))
    return retried


@dataclass(frozen=True, slots=True)
class PayoutDetail:
    payout: Payout
    transitions: Sequence[PayoutTransition]


def payouts_awaiting_review(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[Payout]:
    return payouts.payouts_awaiting_review(uow_factory, limit=limit)


def payout_detail(uow_factory: UnitOfWorkFactory, payout_id: str) -> PayoutDetail:
    """Any payout (a merchant's or a member's withdrawal) with its transition trail; masked account only."""
    with uow_factory() as uow:
        found = uow.payouts.get(payout_id)
        trail = uow.payouts.transitions_of(payout_id)
    if found is None:
        raise NotFound(f"no payout {payout_id}", param="payout_id")
    return PayoutDetail(found, trail)


# Approving may go without a note (the decision speaks for itself); the audit row still needs a reason.
DEFAULT_APPROVAL_NOTE = "approved in review"


def approve_payout(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, payout_id: str, *, note: str = ""
) -> Payout:
    """Lets a held payout go to the next batch (``pending_review → created``), audited in the same
    transaction. A payout already decided raises Conflict and nothing is written."""
    return _review(uow_factory, tools, operator, payout_id, PayoutEvent.APPROVED,
                   note.strip() or DEFAULT_APPROVAL_NOTE)


def reject_payout(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, payout_id: str, *, reason: str
) -> Payout:
    """Refuses a held payout (``pending_review → failed``, ``rejected_in_review``): its money goes back in
    one reversing entry and the merchant receives ``payout.failed``; audited in the same transaction.
    The reason is required and stays internal (audit log and trail)."""
    return _review(uow_factory, tools, operator, payout_id, PayoutEvent.REJECTED, reason)


def _review(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, payout_id: str,
    decision: PayoutEvent, reason: str,
) -> Payout:
    authorize(operator, Permission.REVIEW_PAYOUTS)
    cleaned = check_reason(reason)
    with uow_factory() as uow:
        before, after = payouts.review_payout(uow, tools.clock, payout_id, decision,
                                              reviewer=operator.username, reason=cleaned)
        audit.record(uow, tools.clock, tools.ids, Action(
            operator, _REVIEW_ACTIONS[decision], "payout", payout_id, cleaned,
            before={"status": before.status.value, "amount_minor": before.amount.minor,
                    "merchant_id": before.merchant_id, "member_id": before.member_id},
            after={"status": after.status.value, "failure_code": after.failure_code},
        ))
        uow.commit()
    return after


_REVIEW_ACTIONS: Mapping[PayoutEvent, str] = {
    PayoutEvent.APPROVED: "payout.approve",
    PayoutEvent.REJECTED: "payout.reject",
}


def failed_webhooks(uow_factory: UnitOfWorkFactory, *, limit: int = LIST_LIMIT) -> Sequence[FailedEvent]:
    with uow_factory() as uow:
        return uow.console.failed_events(limit=limit)


def resend_webhook(
    uow_factory: UnitOfWorkFactory, tools: ConsoleTools, operator: Operator, merchant_id: str, event_id: str, *,
    reason: str,
) -> None:
    """Puts a merchant's event back to pending (notifications.resend_event), audited."""
    authorize(operator, Permission.RESEND_WEBHOOK)
    check_reason(reason)
    before = notifications.get_event(uow_factory, merchant_id, event_id)
    after = notifications.resend_event(uow_factory, tools.clock, merchant_id, event_id)
    audit.record_after(uow_factory, tools.clock, tools.ids, Action(
        operator, "webhook.resend", "event", event_id, reason,
        before={"merchant_id": merchant_id, "status": before.status.value, "attempt_count": before.attempt_count},
        after={"status": after.status.value},
    ))
