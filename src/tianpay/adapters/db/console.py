"""The console's repositories: the audit log, operator sessions and lockout, bank switches, and the
cross-merchant lists only the console reads (merchants, members, failed webhooks, payout batches,
settlements)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, insert, select, update

from tianpay.domain.console import AuditRecord, ChannelSetting, OperatorSession
from tianpay.domain.merchant import Merchant, MerchantStatus
from tianpay.domain.operator import Role
from tianpay.domain.settlement import Settlement
from tianpay.ports.console import BatchRow, FailedEvent, LoginState

from .settlements import _settlement as settlement_of_row
from .tables import (
    audit_log,
    channel_settings,
    events,
    members,
    merchants,
    operator_logins,
    operator_sessions,
    payout_batches,
    settlements,
)


class SqlConsoleRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # ---- the audit log ---------------------------------------------------------------------------------

    def add_audit(self, record: AuditRecord) -> None:
        self._connection.execute(
            insert(audit_log).values(
                id=record.id,
                operator=record.operator,
                role=record.role.value,
                action=record.action,
                subject_type=record.subject_type,
                subject_id=record.subject_id,
                reason=record.reason,
                before=_json(record.before),
                after=_json(record.after),
                created_at=record.created_at,
            )
        )

    def audit_records(self, *, operator: str | None, limit: int) -> Sequence[AuditRecord]:
        query = select(audit_log).order_by(audit_log.c.created_at.desc(), audit_log.c.id.desc()).limit(limit)
        if operator is not None:
            query = query.where(audit_log.c.operator == operator)
        return [
            AuditRecord(
                id=row.id, operator=row.operator, role=Role(row.role), action=row.action,
                subject_type=row.subject_type, subject_id=row.subject_id, reason=row.reason,
                before=json.loads(row.before), after=json.loads(row.after), created_at=row.created_at,
            )
            for row in self._connection.execute(query)
        ]

    # ---- sign-in ---------------------------------------------------------------------------------------

    def add_session(self, session: OperatorSession) -> None:
        self._connection.execute(
            insert(operator_sessions).values(
                token_hash=session.token_hash, username=session.username,
                created_at=session.created_at, expires_at=session.expires_at,
            )
        )

    def session(self, token_hash: str) -> OperatorSession | None:
        row = self._connection.execute(
            select(operator_sessions).where(
                operator_sessions.c.token_hash == token_hash, operator_sessions.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        return OperatorSession(row.token_hash, row.username, row.created_at, row.expires_at)

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        self._connection.execute(
            update(operator_sessions)
            .where(operator_sessions.c.token_hash == token_hash, operator_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def login_state(self, username: str) -> LoginState:
        row = self._connection.execute(
            select(operator_logins.c.failed_logins, operator_logins.c.locked_until).where(
                operator_logins.c.username == username
            )
        ).first()
        return LoginState(0, None) if row is None else LoginState(int(row.failed_logins), row.locked_until)

    def record_failed_login(self, username: str, now: datetime) -> int:
        # Insert-or-increment written as two statements both databases run the same way; the caller's
        # transaction holds the row (SQLite's BEGIN IMMEDIATE, PostgreSQL's row lock on the update).
        counted = self._connection.execute(
            update(operator_logins)
            .where(operator_logins.c.username == username)
            .values(failed_logins=operator_logins.c.failed_logins + 1)
        ).rowcount
        if counted == 0:
            self._connection.execute(insert(operator_logins).values(username=username, failed_logins=1))
        return self.login_state(username).failed_logins

    def lock(self, username: str, until: datetime) -> None:
        self._connection.execute(
            update(operator_logins).where(operator_logins.c.username == username).values(locked_until=until)
        )

    def reset_login_failures(self, username: str) -> None:
        self._connection.execute(delete(operator_logins).where(operator_logins.c.username == username))

    # ---- console-only lists ----------------------------------------------------------------------------

    def merchants(self, *, limit: int) -> Sequence[Merchant]:
        rows = self._connection.execute(
            select(merchants).order_by(merchants.c.created_at.desc(), merchants.c.id.desc()).limit(limit)
        )
        return [
            Merchant(row.id, row.name, MerchantStatus(row.status), row.webhook_url, row.webhook_secret, row.created_at)
            for row in rows
        ]

    def set_merchant_status(self, merchant_id: str, status: MerchantStatus, *, expected: MerchantStatus) -> bool:
        changed = self._connection.execute(
            update(merchants)
            .where(merchants.c.id == merchant_id, merchants.c.status == expected.value)
            .values(status=status.value)
        ).rowcount
        return bool(changed == 1)

    def member_ids(self, *, limit: int) -> Sequence[str]:
        rows = self._connection.execute(
            select(members.c.id).order_by(members.c.created_at.desc(), members.c.id.desc()).limit(limit)
        )
        return [str(row.id) for row in rows]

    def failed_events(self, *, limit: int) -> Sequence[FailedEvent]:
        rows = self._connection.execute(
            select(events.c.id, events.c.merchant_id, events.c.type, events.c.attempt_count, events.c.created_at)
            .where(events.c.status == "failed")
            .order_by(events.c.created_at.desc(), events.c.id.desc())
            .limit(limit)
        )
        return [FailedEvent(r.id, r.merchant_id, r.type, int(r.attempt_count), r.created_at) for r in rows]

    def payout_batches(self, *, limit: int) -> Sequence[BatchRow]:
        is_closed = case((payout_batches.c.closed_at.is_(None), 0), else_=1)
        rows = self._connection.execute(
            select(payout_batches)
            .order_by(is_closed, payout_batches.c.created_at.desc(), payout_batches.c.id.desc())
            .limit(limit)
        )
        return [
            BatchRow(r.id, r.bank, int(r.item_count), int(r.total_minor), r.currency, int(r.query_count),
                     r.next_query_at, r.created_at, r.closed_at)
            for r in rows
        ]

    def requery_batch_now(self, batch_id: str, now: datetime) -> bool:
        changed = self._connection.execute(
            update(payout_batches)
            .where(payout_batches.c.id == batch_id, payout_batches.c.closed_at.is_(None))
            .values(next_query_at=now)
        ).rowcount
        return bool(changed == 1)

    def settlements(self, *, limit: int) -> Sequence[Settlement]:
        rows = self._connection.execute(
            select(settlements)
            .order_by(settlements.c.business_date.desc(), settlements.c.merchant_id, settlements.c.id)
            .limit(limit)
        )
        return [settlement_of_row(row) for row in rows]


class SqlChannelSettingsRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def all(self) -> Sequence[ChannelSetting]:
        rows = self._connection.execute(select(channel_settings).order_by(channel_settings.c.bank))
        return [_setting(row) for row in rows]

    def get(self, bank: str) -> ChannelSetting | None:
        row = self._connection.execute(select(channel_settings).where(channel_settings.c.bank == bank)).first()
        return None if row is None else _setting(row)

    def save(self, setting: ChannelSetting) -> None:
        values = {
            "is_enabled": setting.is_enabled,
            "cost_bps": setting.cost_bps,
            "updated_by": setting.updated_by,
            "updated_at": setting.updated_at,
        }
        changed = self._connection.execute(
            update(channel_settings).where(channel_settings.c.bank == setting.bank).values(**values)
        ).rowcount
        if changed == 0:
            self._connection.execute(insert(channel_settings).values(bank=setting.bank, **values))


def _setting(row: Any) -> ChannelSetting:
    cost = None if row.cost_bps is None else int(row.cost_bps)
    return ChannelSetting(row.bank, bool(row.is_enabled), cost, row.updated_by, row.updated_at)


def _json(value: Mapping[str, object]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
