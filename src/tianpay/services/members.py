"""Member use cases: implicit registration by a merchant, wallet sign-up, real name, sign-in sessions,
and the payment password (set, change with an SMS code, verify with a 3-hour lock after 5 misses).

One natural person is one member, matched on the ID number's keyed fingerprint; a merchant sees a
member only through its own ``external_id``. Plain ID numbers, phones, passwords and codes are never
logged, returned or put in an error message: views carry masked copies only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog

from tianpay.domain import ids as id_prefixes
from tianpay.domain.errors import IdempotencyConflict, NotFound
from tianpay.domain.member import (
    MAX_PAYMENT_PASSWORD_TRIES,
    IdNumberInUse,
    InvalidName,
    LoginFailed,
    Member,
    MemberNotActive,
    MemberStatus,
    MerchantMemberLink,
    PaymentPasswordAlreadySet,
    PaymentPasswordIncorrect,
    PaymentPasswordLocked,
    PaymentPasswordNotSet,
    PhoneInUse,
    RegisteredVia,
    SealedPii,
    SmsPurpose,
    check_external_id,
    check_login_password,
    check_name,
    check_payment_password,
    lock_after_failure,
)
from tianpay.domain.notifications import iso_utc
from tianpay.ports.members import MemberSession
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tianpay.services import sms
from tianpay.services.member_tools import MemberTools
from tianpay.services.pii import seal_id_number, seal_phone

log = structlog.stdlib.get_logger(__name__)

# Verified against when a phone has no member, so a sign-in takes as long whether the phone is known.
_DUMMY_PASSWORD: Final = "not-a-password-0"  # noqa: S105 (never anyone's password)
_REGISTRATION_RETRIES: Final = 3


@dataclass(frozen=True, slots=True)
class ImplicitRegistration:
    """What a merchant's backend sends to ``POST /v1/members``."""

    merchant_id: str
    external_id: str
    name: str
    id_number: str
    phone: str


@dataclass(frozen=True, slots=True)
class RegisteredMember:
    member: Member
    external_id: str
    replayed: bool


# ---- implicit registration (merchant backends) ------------------------------------------------------------


def register_for_merchant(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, request: ImplicitRegistration
) -> RegisteredMember:
    """Registers (or finds) the natural person and links them to the merchant's ``external_id``.

    Idempotent by external_id per merchant: the same data returns the same member (``replayed``),
    other data raises IdempotencyConflict. The same person registered by another merchant (the same
    ID number) is the same member. Raises the validation errors (name, id_number, phone), PhoneInUse
    when the phone belongs to another person, InvalidName when the name is not the one on file.
    """
    check_external_id(request.external_id)
    name = check_name(request.name)
    id_number = seal_id_number(tools.cipher, request.id_number)
    phone = seal_phone(tools.cipher, request.phone)
    request_hash = _registration_hash(name, id_number, phone)
    # Two merchants registering one person at the same moment race on the unique fingerprint; the
    # loser reads the winner's member on the next pass.
    for _ in range(_REGISTRATION_RETRIES):
        try:
            return _register_once(uow_factory, tools, request, name, id_number, phone, request_hash)
        except IdNumberInUse:
            continue
    raise IdNumberInUse("the member is being registered concurrently; try again", param="id_number")


def _register_once(
    uow_factory: UnitOfWorkFactory,
    tools: MemberTools,
    request: ImplicitRegistration,
    name: str,
    id_number: SealedPii,
    phone: SealedPii,
    request_hash: str,
) -> RegisteredMember:
    with uow_factory() as uow:
        existing_link = uow.members.link(request.merchant_id, request.external_id)
        if existing_link is not None:
            return _replayed(uow, existing_link, request_hash)
        now = tools.clock.now()
        member = _person(uow, tools, name, id_number, phone, now)
        link = MerchantMemberLink(request.merchant_id, request.external_id, member.id, request_hash, now)
        if not uow.members.add_link(link):
            raced = uow.members.link(request.merchant_id, request.external_id)
            if raced is None:
                raise IdNumberInUse("the member is being registered concurrently; try again", param="external_id")
            return _replayed(uow, raced, request_hash)
        uow.commit()
    log.info("member.linked", member_id=member.id, merchant_id=request.merchant_id)
    return RegisteredMember(member, request.external_id, replayed=False)


def _person(
    uow: UnitOfWork, tools: MemberTools, name: str, id_number: SealedPii, phone: SealedPii, now: datetime
) -> Member:
    """The member this ID number belongs to, created when it is the first time anyone registers it."""
    member = uow.members.by_id_number_fingerprint(id_number.fingerprint)
    if member is not None:
        if member.name is not None and member.name != name:
            raise InvalidName("the name does not match the one registered with this ID number", param="name")
        if member.phone is None:
            member = replace(member, phone=_free_phone(uow, phone, member.id), updated_at=now)
            uow.members.update(member)
        return member
    member = Member(
        id=tools.ids.new(id_prefixes.MEMBER),
        name=name,
        id_number=id_number,
        phone=_free_phone(uow, phone, None),
        status=MemberStatus.ACTIVE,
        registered_via=RegisteredVia.MERCHANT,
        # The merchant asserts the name and a valid ID number under its own KYC duty (docs/members.md).
        is_real_name_verified=True,
        created_at=now,
        updated_at=now,
    )
    uow.members.add(member)
    return member


def _free_phone(uow: UnitOfWork, phone: SealedPii, member_id: str | None) -> SealedPii:
    holder = uow.members.by_phone_fingerprint(phone.fingerprint)
    if holder is not None and holder.id != member_id:
        raise PhoneInUse("another member uses this phone", param="phone")
    return phone


def _replayed(uow: UnitOfWork, link: MerchantMemberLink, request_hash: str) -> RegisteredMember:
    if link.request_hash != request_hash:
        raise IdempotencyConflict(
            f"external_id {link.external_id!r} is already registered with other data", param="external_id"
        )
    member = uow.members.get(link.member_id)
    if member is None:
        raise NotFound(f"no member {link.member_id}")
    return RegisteredMember(member, link.external_id, replayed=True)


def _registration_hash(name: str, id_number: SealedPii, phone: SealedPii) -> str:
    # Fingerprints, not numbers: this hash is stored, and must not become a way to test guesses.
    canonical = json.dumps([name, id_number.fingerprint, phone.fingerprint], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def member_for_merchant(uow_factory: UnitOfWorkFactory, merchant_id: str, member_id: str) -> Member:
    """The member, if the merchant registered it; NotFound otherwise (another merchant's is invisible)."""
    with uow_factory() as uow:
        member = uow.members.get_for_merchant(member_id, merchant_id)
    if member is None:
        raise NotFound(f"no member {member_id}", param="id")
    return member


def external_ids_of(uow_factory: UnitOfWorkFactory, merchant_id: str, member_id: str) -> list[str]:
    with uow_factory() as uow:
        return [link.external_id for link in uow.members.links_of(member_id, merchant_id)]


def get_member(uow_factory: UnitOfWorkFactory, member_id: str) -> Member:
    with uow_factory() as uow:
        member = uow.members.get(member_id)
    if member is None:
        raise NotFound(f"no member {member_id}", param="member_id")
    return member


def member_view(member: Member, external_ids: list[str]) -> dict[str, object]:
    """The member as a merchant sees it: masked numbers only, and only its own external ids."""
    return {
        "id": member.id,
        "object": "member",
        "external_ids": external_ids,
        "name": member.name,
        "id_number": None if member.id_number is None else member.id_number.masked,
        "phone": None if member.phone is None else member.phone.masked,
        "status": member.status.value,
        "is_real_name_verified": member.is_real_name_verified,
        "has_payment_password": member.has_payment_password,
        "created_at": iso_utc(member.created_at),
    }


# ---- explicit registration and sign-in (the wallet) -------------------------------------------------------


def send_registration_code(uow_factory: UnitOfWorkFactory, tools: MemberTools, phone: str) -> None:
    """Sends a sign-up code to a phone no wallet signs in with yet."""
    sealed = seal_phone(tools.cipher, phone)
    with uow_factory() as uow:
        holder = uow.members.by_phone_fingerprint(sealed.fingerprint)
    if holder is not None and holder.login_password_hash is not None:
        raise PhoneInUse("a wallet already signs in with this phone; sign in instead", param="phone")
    sms.send_code(uow_factory, tools, sealed, SmsPurpose.REGISTER)


def register_in_wallet(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, phone: str, sms_code: str, login_password: str
) -> Member:
    """Creates a wallet member from a phone proven by SMS and a login password.

    A member a merchant registered with this phone (who has no login yet) is the same person: the
    proven phone claims that member instead of creating a second one.
    """
    sealed = seal_phone(tools.cipher, phone)
    check_login_password(login_password)
    sms.check_code(uow_factory, tools, sealed.fingerprint, SmsPurpose.REGISTER, sms_code)
    password_hash = tools.hasher.hash(login_password)
    now = tools.clock.now()
    with uow_factory() as uow:
        holder = uow.members.by_phone_fingerprint(sealed.fingerprint)
        if holder is not None:
            if holder.login_password_hash is not None:
                raise PhoneInUse("a wallet already signs in with this phone; sign in instead", param="phone")
            member = replace(holder, login_password_hash=password_hash, updated_at=now)
            uow.members.update(member)
        else:
            member = Member(
                id=tools.ids.new(id_prefixes.MEMBER),
                name=None,
                id_number=None,
                phone=sealed,
                status=MemberStatus.ACTIVE,
                registered_via=RegisteredVia.WALLET,
                is_real_name_verified=False,
                created_at=now,
                updated_at=now,
                login_password_hash=password_hash,
            )
            uow.members.add(member)
        uow.commit()
    log.info("member.registered_in_wallet", member_id=member.id)
    return member


def verify_real_name(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str, name: str, id_number: str
) -> Member:
    """Records the member's name and ID number (validated, sealed); the wallet's 实名认证.

    Raises IdNumberInUse when another member holds the ID number (one person, one member: support
    merges such accounts by hand, see docs/members.md).
    """
    normalised = check_name(name)
    sealed = seal_id_number(tools.cipher, id_number)
    with uow_factory() as uow:
        member = _locked_member(uow, member_id)
        holder = uow.members.by_id_number_fingerprint(sealed.fingerprint)
        if holder is not None and holder.id != member.id:
            raise IdNumberInUse("another member is registered with this ID number", param="id_number")
        verified = member.with_real_name(normalised, sealed, tools.clock.now())
        uow.members.update(verified)
        uow.commit()
    return verified


def log_in(uow_factory: UnitOfWorkFactory, tools: MemberTools, phone: str, login_password: str) -> Member:
    """The member whose phone and login password these are; LoginFailed (never saying which) otherwise."""
    try:
        fingerprint = seal_phone(tools.cipher, phone).fingerprint
    except Exception:
        raise LoginFailed("the phone or the password is incorrect") from None
    with uow_factory() as uow:
        member = uow.members.by_phone_fingerprint(fingerprint)
    hashed = None if member is None else member.login_password_hash
    if member is None or hashed is None:
        tools.hasher.verify(tools.hasher.hash(_DUMMY_PASSWORD), login_password)
        raise LoginFailed("the phone or the password is incorrect")
    if not tools.hasher.verify(hashed, login_password):
        raise LoginFailed("the phone or the password is incorrect")
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    return member


def start_session(uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str) -> str:
    """A new session token for the member (the cookie's value); only its hash is stored."""
    token = secrets.token_urlsafe(32)
    now = tools.clock.now()
    with uow_factory() as uow:
        uow.members.add_session(MemberSession(session_token_hash(token), member_id, now, now + tools.session_lifetime))
        uow.commit()
    return token


def member_of_session(uow_factory: UnitOfWorkFactory, tools: MemberTools, token: str | None) -> Member | None:
    """The signed-in member of a session token, or None (unknown, expired, revoked, frozen)."""
    if not token or len(token) > 128:
        return None
    with uow_factory() as uow:
        session = uow.members.session(session_token_hash(token))
        if session is None or not session.is_valid_at(tools.clock.now()):
            return None
        member = uow.members.get(session.member_id)
    return member if member is not None and member.is_active else None


def end_session(uow_factory: UnitOfWorkFactory, tools: MemberTools, token: str | None) -> None:
    if not token or len(token) > 128:
        return
    with uow_factory() as uow:
        uow.members.revoke_session(session_token_hash(token), tools.clock.now())
        uow.commit()


def session_token_hash(token: str) -> str:
    # The token is 256 random bits, so a plain SHA-256 cannot be reversed by guessing.
    return hashlib.sha256(token.encode()).hexdigest()


# ---- the payment password --------------------------------------------------------------------------------


def member_needs_payment_password(uow_factory: UnitOfWorkFactory, member_id: str) -> bool:
    """Whether the member must still choose a payment password (after the first card binding)."""
    return not get_member(uow_factory, member_id).has_payment_password


def set_payment_password(uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str, password: str) -> None:
    """Sets the first payment password; PaymentPasswordAlreadySet when one exists (change it by SMS)."""
    check_payment_password(password)
    hashed = tools.hasher.hash(password)
    with uow_factory() as uow:
        member = _locked_member(uow, member_id)
        if member.has_payment_password:
            raise PaymentPasswordAlreadySet("a payment password is set; change it with an SMS code")
        uow.members.update(_with_payment_password(member, hashed, tools.clock.now()))
        uow.commit()
    log.info("member.payment_password_set", member_id=member_id)


def send_payment_password_code(uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str) -> None:
    """Sends the member's phone a code to change the payment password."""
    sms.send_code(uow_factory, tools, _phone_of(get_member(uow_factory, member_id)), SmsPurpose.RESET_PAYMENT_PASSWORD)


def change_payment_password(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str, sms_code: str, new_password: str
) -> None:
    """Replaces the payment password after an SMS code to the member's phone; this also unlocks it."""
    check_payment_password(new_password)
    member = get_member(uow_factory, member_id)
    sms.check_code(uow_factory, tools, _phone_of(member).fingerprint, SmsPurpose.RESET_PAYMENT_PASSWORD, sms_code)
    hashed = tools.hasher.hash(new_password)
    with uow_factory() as uow:
        locked = _locked_member(uow, member_id)
        uow.members.update(_with_payment_password(locked, hashed, tools.clock.now()))
        uow.commit()
    log.info("member.payment_password_changed", member_id=member_id)


def verify_payment_password(uow_factory: UnitOfWorkFactory, tools: MemberTools, member_id: str, password: str) -> None:
    """Returns when ``password`` is the member's payment password; raises otherwise.

    PaymentPasswordLocked while a lock lasts (the password is not even checked), PaymentPasswordNotSet,
    or PaymentPasswordIncorrect with the tries left; the 5th miss in a row locks it for 3 hours.
    Each miss is committed on its own, so a refused payment still counts it.
    """
    verify_member_payment_password(uow_factory, tools, get_member(uow_factory, member_id), password)


def verify_member_payment_password(
    uow_factory: UnitOfWorkFactory, tools: MemberTools, member: Member, password: str
) -> None:
    """``verify_payment_password`` for a member the caller has just read (no second read of the row).

    The lock and the failure count are taken from ``member``; a miss (or a reset after earlier
    misses) still opens its own unit of work, which re-reads the row under a lock before writing.
    """
    member_id = member.id
    now = tools.clock.now()
    if not member.is_active:
        raise MemberNotActive("this wallet is frozen; contact support")
    if member.is_payment_password_locked_at(now):
        assert member.payment_password_locked_until is not None
        raise PaymentPasswordLocked(
            f"the payment password is locked until {iso_utc(member.payment_password_locked_until)}",
            locked_until=member.payment_password_locked_until,
        )
    if member.payment_password_hash is None:
        raise PaymentPasswordNotSet("the member has no payment password yet", param="payment_password")
    if tools.hasher.verify(member.payment_password_hash, password):
        if member.payment_password_failures or member.payment_password_locked_until:
            _reset_failures(uow_factory, member_id, now)
        return
    _count_failure(uow_factory, member_id, now)


def _count_failure(uow_factory: UnitOfWorkFactory, member_id: str, now: datetime) -> None:
    with uow_factory() as uow:
        member = _locked_member(uow, member_id)
        # A lock that ran out starts a fresh count of five.
        if member.payment_password_locked_until is not None and now >= member.payment_password_locked_until:
            uow.members.update(replace(member, payment_password_failures=0, payment_password_locked_until=None))
        failures = uow.members.count_payment_password_failure(member_id, now)
        locked_until = lock_after_failure(failures, now)
        if locked_until is not None:
            current = _locked_member(uow, member_id)
            locked = replace(current, payment_password_failures=0, payment_password_locked_until=locked_until)
            uow.members.update(replace(locked, updated_at=now))
        uow.commit()
    log.warning("member.payment_password_incorrect", member_id=member_id, failures=failures)
    if locked_until is not None:
        raise PaymentPasswordLocked(
            f"the payment password was entered wrong {MAX_PAYMENT_PASSWORD_TRIES} times and is locked until "
            f"{iso_utc(locked_until)}",
            locked_until=locked_until,
        )
    tries_left = MAX_PAYMENT_PASSWORD_TRIES - failures
    raise PaymentPasswordIncorrect(
        f"the payment password is incorrect ({tries_left} tries left)", tries_left=tries_left
    )


def _reset_failures(uow_factory: UnitOfWorkFactory, member_id: str, now: datetime) -> None:
    with uow_factory() as uow:
        member = _locked_member(uow, member_id)
        uow.members.update(
            replace(member, payment_password_failures=0, payment_password_locked_until=None, updated_at=now)
        )
        uow.commit()


def _with_payment_password(member: Member, hashed: str, now: datetime) -> Member:
    return replace(
        member,
        payment_password_hash=hashed,
        payment_password_failures=0,
        payment_password_locked_until=None,
        updated_at=now,
    )


def _locked_member(uow: UnitOfWork, member_id: str) -> Member:
    member = uow.members.get_for_update(member_id)
    if member is None:
        raise NotFound(f"no member {member_id}", param="member_id")
    return member


def _phone_of(member: Member) -> SealedPii:
    if member.phone is None:
        raise NotFound(f"member {member.id} has no phone to send a code to", param="phone")
    return member.phone
