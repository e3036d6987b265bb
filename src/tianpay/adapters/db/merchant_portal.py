"""The merchant portal's repositories: portal users and sessions, and the portal's read-only queries.

Counters (wrong passwords in a row) are incremented in SQL so two concurrent tries never lose one.
Every query of ``SqlPortalQueries`` filters on the merchant id in SQL: scoping is never left to the
caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.errors import Conflict
from tianpay.domain.mandate import Mandate
from tianpay.domain.merchant_user import MerchantUser, PortalSession
from tianpay.domain.payment import Payment
from tianpay.domain.pos import Terminal, TerminalStatus
from tianpay.ports.merchant_portal import MerchantMemberRow, PortalPaymentFilter
from tianpay.ports.payments import PagePosition

from .mandates import _mandate
from .payments import _payment_from
from .tables import (
    events,
    mandates,
    members,
    merchant_members,
    merchant_user_sessions,
    merchant_users,
    payment_attempts,
    payments,
    terminals,
)


class SqlMerchantUserRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, user: MerchantUser, password_hash: str) -> None:
        try:
            # A savepoint keeps the unit of work usable after a duplicate on PostgreSQL.
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(merchant_users).values(
                        id=user.id,
                        merchant_id=user.merchant_id,
                        username=user.username,
                        password_hash=password_hash,
                        is_totp_enabled=user.is_totp_enabled,
                        failed_logins=user.failed_logins,
                        locked_until=user.locked_until,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"the username {user.username} is taken", param="username") from None

    def get(self, user_id: str) -> MerchantUser | None:
        row = self._connection.execute(select(merchant_users).where(merchant_users.c.id == user_id)).first()
        return None if row is None else _user(row)

    def by_username(self, username: str) -> MerchantUser | None:
        row = self._connection.execute(select(merchant_users).where(merchant_users.c.username == username)).first()
        return None if row is None else _user(row)

    def password_hash(self, user_id: str) -> str | None:
        return self._connection.execute(
            select(merchant_users.c.password_hash).where(merchant_users.c.id == user_id)
        ).scalar_one_or_none()

    def record_failed_login(self, user_id: str) -> int:
        self._connection.execute(
            update(merchant_users)
            .where(merchant_users.c.id == user_id)
            .values(failed_logins=merchant_users.c.failed_logins + 1)
        )
        return int(
            self._connection.execute(
                select(merchant_users.c.failed_logins).where(merchant_users.c.id == user_id)
            ).scalar_one()
        )

    def lock(self, user_id: str, locked_until: datetime) -> None:
        self._connection.execute(
            update(merchant_users).where(merchant_users.c.id == user_id).values(locked_until=locked_until)
        )

    def record_successful_login(self, user_id: str) -> None:
        self._connection.execute(
            update(merchant_users).where(merchant_users.c.id == user_id).values(failed_logins=0, locked_until=None)
        )

    def sealed_totp_secret(self, user_id: str) -> str | None:
        return self._connection.execute(
            select(merchant_users.c.totp_secret_sealed).where(merchant_users.c.id == user_id)
        ).scalar_one_or_none()

    def set_totp(self, user_id: str, sealed_secret: str | None, *, is_enabled: bool) -> None:
        self._connection.execute(
            update(merchant_users)
            .where(merchant_users.c.id == user_id)
            .values(totp_secret_sealed=sealed_secret, is_totp_enabled=is_enabled)
        )

    def add_session(self, session: PortalSession) -> None:
        self._connection.execute(
            insert(merchant_user_sessions).values(
                token_hash=session.token_hash,
                user_id=session.user_id,
                is_verified=session.is_verified,
                created_at=session.created_at,
                expires_at=session.expires_at,
                revoked_at=session.revoked_at,
            )
        )

    def session(self, token_hash: str) -> PortalSession | None:
        row = self._connection.execute(
            select(merchant_user_sessions).where(merchant_user_sessions.c.token_hash == token_hash)
        ).first()
        if row is None:
            return None
        return PortalSession(
            row.token_hash, row.user_id, row.created_at, row.expires_at, bool(row.is_verified), row.revoked_at
        )

    def mark_session_verified(self, token_hash: str) -> None:
        self._connection.execute(
            update(merchant_user_sessions)
            .where(merchant_user_sessions.c.token_hash == token_hash)
            .values(is_verified=True)
        )

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        self._connection.execute(
            update(merchant_user_sessions)
            .where(merchant_user_sessions.c.token_hash == token_hash, merchant_user_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


class SqlPortalQueries:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def search_payments(
        self, merchant_id: str, filters: PortalPaymentFilter, *, after: PagePosition | None, limit: int
    ) -> Sequence[Payment]:
        query = select(payments).where(payments.c.merchant_id == merchant_id)
        for condition in _conditions(filters):
            query = query.where(condition)
        if after is not None:
            query = query.where(
                or_(
                    payments.c.created_at < after.created_at,
                    and_(payments.c.created_at == after.created_at, payments.c.id < after.id),
                )
            )
        rows = self._connection.execute(query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit))
        return [_payment_from(row) for row in rows]

    def event_ids_about(self, merchant_id: str, subject_ids: Sequence[str], *, limit: int) -> Sequence[str]:
        if not subject_ids:
            return []
        # Ids are unique prefixed ULIDs, so a quoted id inside an event's JSON names that resource.
        matches = [events.c.payload.contains(f'"{subject_id}"', autoescape=True) for subject_id in subject_ids]
        rows = self._connection.execute(
            select(events.c.id)
            .where(events.c.merchant_id == merchant_id, or_(*matches))
            .order_by(events.c.created_at.desc(), events.c.id.desc())
            .limit(limit)
        )
        return [row.id for row in rows]

    def members_of(self, merchant_id: str, *, limit: int) -> Sequence[MerchantMemberRow]:
        rows = self._connection.execute(
            select(
                merchant_members.c.member_id,
                merchant_members.c.external_id,
                merchant_members.c.created_at,
                members.c.name,
                members.c.phone_masked,
                members.c.id_number_masked,
                members.c.status,
            )
            .join(members, members.c.id == merchant_members.c.member_id)
            .where(merchant_members.c.merchant_id == merchant_id)
            .order_by(merchant_members.c.created_at.desc())
            .limit(limit)
        )
        return [
            MerchantMemberRow(
                row.member_id, row.external_id, _mask_name(row.name), row.phone_masked, row.id_number_masked,
                row.status, row.created_at,
            )
            for row in rows
        ]

    def mandates_of(self, merchant_id: str, *, limit: int) -> Sequence[Mandate]:
        rows = self._connection.execute(
            select(mandates)
            .where(mandates.c.merchant_id == merchant_id)
            .order_by(mandates.c.created_at.desc())
            .limit(limit)
        )
        return [_mandate(row) for row in rows]

    def terminals_of(self, merchant_id: str) -> Sequence[Terminal]:
        rows = self._connection.execute(
            select(terminals).where(terminals.c.merchant_id == merchant_id).order_by(terminals.c.tid)
        )
        return [
            Terminal(row.tid, row.mid, row.merchant_id, row.batch_no, TerminalStatus(row.status), row.created_at,
                     row.signed_on_at)
            for row in rows
        ]


def _conditions(filters: PortalPaymentFilter) -> list[Any]:
    conditions: list[Any] = []
    if filters.status is not None:
        conditions.append(payments.c.status == filters.status.value)
    if filters.method is not None:
        conditions.append(payments.c.method == filters.method.value)
    if filters.bank is not None:
        # A cashier payment names no bank until the payer picks one: its attempts say where it went.
        at_bank = select(payment_attempts.c.payment_id).where(payment_attempts.c.bank == filters.bank)
        conditions.append(or_(payments.c.bank == filters.bank, payments.c.id.in_(at_bank)))
    if filters.amount_min_minor is not None:
        conditions.append(payments.c.amount_minor >= filters.amount_min_minor)
    if filters.amount_max_minor is not None:
        conditions.append(payments.c.amount_minor <= filters.amount_max_minor)
    if filters.created_from is not None:
        conditions.append(payments.c.created_at >= filters.created_from)
    if filters.created_before is not None:
        conditions.append(payments.c.created_at < filters.created_before)
    if filters.out_trade_no is not None:
        conditions.append(payments.c.out_trade_no == filters.out_trade_no)
    return conditions


def _mask_name(name: str | None) -> str:
    # A name shows its first character only (张**), as Chinese payment pages commonly do.
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1 if len(name) > 1 else 1)


def _user(row: Any) -> MerchantUser:
    return MerchantUser(
        id=row.id,
        merchant_id=row.merchant_id,
        username=row.username,
        is_totp_enabled=bool(row.is_totp_enabled),
        failed_logins=int(row.failed_logins),
        locked_until=row.locked_until,
        created_at=row.created_at,
    )
