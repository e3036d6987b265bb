"""The member repository over ``members``, ``merchant_members`` and ``member_sessions``, and the SMS
code repository over ``sms_codes``, on the unit of work's connection.

Only ciphertexts, fingerprints and masked copies of ID numbers and phones are written here. Counters
(wrong payment passwords, wrong SMS codes) are incremented in SQL, so concurrent tries never lose one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tianpay.domain.member import (
    IdNumberInUse,
    Member,
    MemberStatus,
    MerchantMemberLink,
    PhoneInUse,
    RegisteredVia,
    SealedPii,
    SmsCode,
    SmsPurpose,
)
from tianpay.ports.members import MemberSession

from .tables import member_sessions, members, merchant_members, sms_codes


class SqlMemberRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, member: Member) -> None:
        # A savepoint keeps the unit of work usable after a duplicate on PostgreSQL.
        try:
            with self._connection.begin_nested():
                self._connection.execute(insert(members).values(_member_row(member)))
        except IntegrityError as error:
            raise _in_use(error) from None

    def get(self, member_id: str) -> Member | None:
        row = self._connection.execute(select(members).where(members.c.id == member_id)).first()
        return None if row is None else _member_from(row)

    def get_for_merchant(self, member_id: str, merchant_id: str) -> Member | None:
        # The member and "is it this merchant's?" in one round trip (every wallet confirm asks).
        linked = (
            select(merchant_members.c.member_id)
            .where(merchant_members.c.member_id == members.c.id, merchant_members.c.merchant_id == merchant_id)
            .exists()
        )
        row = self._connection.execute(select(members).where(members.c.id == member_id, linked)).first()
        return None if row is None else _member_from(row)

    def get_for_update(self, member_id: str) -> Member | None:
        row = self._connection.execute(select(members).where(members.c.id == member_id).with_for_update()).first()
        return None if row is None else _member_from(row)

    def by_id_number_fingerprint(self, fingerprint: str) -> Member | None:
        row = self._connection.execute(select(members).where(members.c.id_number_fingerprint == fingerprint)).first()
        return None if row is None else _member_from(row)

    def by_phone_fingerprint(self, fingerprint: str) -> Member | None:
        row = self._connection.execute(select(members).where(members.c.phone_fingerprint == fingerprint)).first()
        return None if row is None else _member_from(row)

    def update(self, member: Member) -> None:
        row = _member_row(member)
        del row["id"], row["created_at"]
        try:
            with self._connection.begin_nested():
                self._connection.execute(update(members).where(members.c.id == member.id).values(row))
        except IntegrityError as error:
            raise _in_use(error) from None

    def count_payment_password_failure(self, member_id: str, now: datetime) -> int:
        # The UPDATE takes the row lock, so concurrent wrong tries are counted one after another.
        self._connection.execute(
            update(members)
            .where(members.c.id == member_id)
            .values(payment_password_failures=members.c.payment_password_failures + 1, updated_at=now)
        )
        failures = self._connection.execute(
            select(members.c.payment_password_failures).where(members.c.id == member_id)
        ).scalar_one()
        return int(failures)

    def add_link(self, link: MerchantMemberLink) -> bool:
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    insert(merchant_members).values(
                        merchant_id=link.merchant_id,
                        external_id=link.external_id,
                        member_id=link.member_id,
                        request_hash=link.request_hash,
                        created_at=link.created_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def link(self, merchant_id: str, external_id: str) -> MerchantMemberLink | None:
        row = self._connection.execute(
            select(merchant_members).where(
                merchant_members.c.merchant_id == merchant_id, merchant_members.c.external_id == external_id
            )
        ).first()
        return None if row is None else _link_from(row)

    def links_of(self, member_id: str, merchant_id: str) -> Sequence[MerchantMemberLink]:
        rows = self._connection.execute(
            select(merchant_members)
            .where(merchant_members.c.member_id == member_id, merchant_members.c.merchant_id == merchant_id)
            .order_by(merchant_members.c.created_at)
        )
        return [_link_from(row) for row in rows]

    def add_session(self, session: MemberSession) -> None:
        self._connection.execute(
            insert(member_sessions).values(
                token_hash=session.token_hash,
                member_id=session.member_id,
                created_at=session.created_at,
                expires_at=session.expires_at,
                revoked_at=session.revoked_at,
            )
        )

    def session(self, token_hash: str) -> MemberSession | None:
        query = select(member_sessions).where(member_sessions.c.token_hash == token_hash)
        row = self._connection.execute(query).first()
        if row is None:
            return None
        return MemberSession(row.token_hash, row.member_id, row.created_at, row.expires_at, row.revoked_at)

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        self._connection.execute(
            update(member_sessions)
            .where(member_sessions.c.token_hash == token_hash, member_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


class SqlSmsCodeRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, code: SmsCode) -> None:
        self._connection.execute(
            insert(sms_codes).values(
                id=code.id,
                phone_fingerprint=code.phone_fingerprint,
                purpose=code.purpose.value,
                code_hash=code.code_hash,
                failed_tries=code.failed_tries,
                expires_at=code.expires_at,
                consumed_at=code.consumed_at,
                created_at=code.created_at,
            )
        )

    def latest(self, phone_fingerprint: str, purpose: str) -> SmsCode | None:
        row = self._connection.execute(
            select(sms_codes)
            .where(sms_codes.c.phone_fingerprint == phone_fingerprint, sms_codes.c.purpose == purpose)
            .order_by(sms_codes.c.created_at.desc(), sms_codes.c.id.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if row is None:
            return None
        return SmsCode(
            id=row.id,
            phone_fingerprint=row.phone_fingerprint,
            purpose=SmsPurpose(row.purpose),
            code_hash=row.code_hash,
            expires_at=row.expires_at,
            created_at=row.created_at,
            failed_tries=int(row.failed_tries),
            consumed_at=row.consumed_at,
        )

    def count_failure(self, code_id: str) -> int:
        self._connection.execute(
            update(sms_codes).where(sms_codes.c.id == code_id).values(failed_tries=sms_codes.c.failed_tries + 1)
        )
        return int(
            self._connection.execute(select(sms_codes.c.failed_tries).where(sms_codes.c.id == code_id)).scalar_one()
        )

    def consume(self, code_id: str, now: datetime) -> bool:
        result = self._connection.execute(
            update(sms_codes)
            .where(sms_codes.c.id == code_id, sms_codes.c.consumed_at.is_(None))
            .values(consumed_at=now)
        )
        return result.rowcount == 1


def _in_use(error: IntegrityError) -> Exception:
    text = str(error.orig).lower()
    if "phone" in text:
        return PhoneInUse("another member uses this phone", param="phone")
    return IdNumberInUse("another member is registered with this ID number", param="id_number")


def _member_row(member: Member) -> dict[str, Any]:
    id_number = member.id_number
    phone = member.phone
    return {
        "id": member.id,
        "name": member.name,
        "id_number_ciphertext": None if id_number is None else id_number.ciphertext,
        "id_number_fingerprint": None if id_number is None else id_number.fingerprint,
        "id_number_masked": None if id_number is None else id_number.masked,
        "phone_ciphertext": None if phone is None else phone.ciphertext,
        "phone_fingerprint": None if phone is None else phone.fingerprint,
        "phone_masked": None if phone is None else phone.masked,
        "status": member.status.value,
        "registered_via": member.registered_via.value,
        "is_real_name_verified": member.is_real_name_verified,
        "login_password_hash": member.login_password_hash,
        "payment_password_hash": member.payment_password_hash,
        "payment_password_failures": member.payment_password_failures,
        "payment_password_locked_until": member.payment_password_locked_until,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


def _sealed(ciphertext: str | None, fingerprint: str | None, masked: str | None) -> SealedPii | None:
    if ciphertext is None or fingerprint is None or masked is None:
        return None
    return SealedPii(ciphertext, fingerprint, masked)


def _member_from(row: Any) -> Member:
    return Member(
        id=row.id,
        name=row.name,
        id_number=_sealed(row.id_number_ciphertext, row.id_number_fingerprint, row.id_number_masked),
        phone=_sealed(row.phone_ciphertext, row.phone_fingerprint, row.phone_masked),
        status=MemberStatus(row.status),
        registered_via=RegisteredVia(row.registered_via),
        is_real_name_verified=bool(row.is_real_name_verified),
        created_at=row.created_at,
        updated_at=row.updated_at,
        login_password_hash=row.login_password_hash,
        payment_password_hash=row.payment_password_hash,
        payment_password_failures=int(row.payment_password_failures),
        payment_password_locked_until=row.payment_password_locked_until,
    )


def _link_from(row: Any) -> MerchantMemberLink:
    return MerchantMemberLink(row.merchant_id, row.external_id, row.member_id, row.request_hash, row.created_at)
