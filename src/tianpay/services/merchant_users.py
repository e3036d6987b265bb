"""Merchant portal sign-in: users, argon2id passwords, lockout, sessions and optional TOTP.

A session token is random; only its SHA-256 is stored, so a leaked table opens no session. A user with
TOTP gets an unverified session at the password step, which opens nothing but the code page until a
valid code is typed. Five wrong passwords in a row lock the account for 15 minutes (domain rule).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import pyotp

from tianpay.domain import ids
from tianpay.domain.errors import NotFound
from tianpay.domain.merchant_user import (
    LoginFailed,
    LoginLocked,
    MerchantUser,
    PortalSession,
    TotpInvalid,
    check_new_user,
    lock_after_failure,
)
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.members import PasswordHasher
from tianpay.ports.merchants import SecretVault
from tianpay.ports.unit_of_work import UnitOfWorkFactory

DEFAULT_SESSION_LIFETIME = timedelta(hours=8)
TOTP_ISSUER = "Tianpay"
# A dummy hash checked when the username is unknown, so a wrong username takes as long as a wrong
# password and the timing does not tell which usernames exist.
_DUMMY_PASSWORD = "not-a-real-password-for-timing"  # noqa: S105


@dataclass(frozen=True, slots=True)
class PortalTools:
    """What portal sign-in needs besides the database."""

    clock: Clock
    ids: IdGenerator
    hasher: PasswordHasher
    vault: SecretVault
    session_lifetime: timedelta = DEFAULT_SESSION_LIFETIME


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A signed-in browser: the user, and whether the session still waits for a TOTP code."""

    user: MerchantUser
    is_verified: bool


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A new TOTP secret waiting for its first code; shown once, as text and as an otpauth URI."""

    secret: str
    provisioning_uri: str


def create_user(
    uow_factory: UnitOfWorkFactory, tools: PortalTools, merchant_id: str, username: str, password: str
) -> MerchantUser:
    """Adds a portal user of ``merchant_id``; raises NotFound (merchant), InvalidMerchantUser or Conflict."""
    check_new_user(username, password)
    user = MerchantUser(
        id=tools.ids.new(ids.MERCHANT_USER),
        merchant_id=merchant_id,
        username=username,
        is_totp_enabled=False,
        failed_logins=0,
        locked_until=None,
        created_at=tools.clock.now(),
    )
    password_hash = tools.hasher.hash(password)
    with uow_factory() as uow:
        if uow.merchants.get(merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}", param="merchant_id")
        uow.merchant_users.add(user, password_hash)
        uow.commit()
    return user


def log_in(uow_factory: UnitOfWorkFactory, tools: PortalTools, username: str, password: str) -> MerchantUser:
    """The user when the password is right; raises LoginFailed, or LoginLocked while the account is locked.

    A locked account refuses even the right password, so guessing gains nothing during the lock.
    """
    now = tools.clock.now()
    with uow_factory() as uow:
        user = uow.merchant_users.by_username(username)
        stored = None if user is None else uow.merchant_users.password_hash(user.id)
    if user is None or stored is None:
        tools.hasher.verify(tools.hasher.hash(_DUMMY_PASSWORD), password)
        raise LoginFailed("wrong username or password")
    if user.is_locked_at(now):
        raise LoginLocked("too many wrong passwords; try again later")
    is_right = tools.hasher.verify(stored, password)
    with uow_factory() as uow:
        if is_right:
            uow.merchant_users.record_successful_login(user.id)
            uow.commit()
            return user
        failures = uow.merchant_users.record_failed_login(user.id)
        locked_until = lock_after_failure(failures, now)
        if locked_until is not None:
            uow.merchant_users.lock(user.id, locked_until)
        uow.commit()
    if locked_until is not None:
        raise LoginLocked("too many wrong passwords; try again later")
    raise LoginFailed("wrong username or password")


def start_session(uow_factory: UnitOfWorkFactory, tools: PortalTools, user: MerchantUser) -> str:
    """A new session token for ``user``; verified at once unless the user has TOTP switched on."""
    token = secrets.token_urlsafe(32)
    now = tools.clock.now()
    session = PortalSession(
        token_hash=_hash(token),
        user_id=user.id,
        created_at=now,
        expires_at=now + tools.session_lifetime,
        is_verified=not user.is_totp_enabled,
    )
    with uow_factory() as uow:
        uow.merchant_users.add_session(session)
        uow.commit()
    return token


def signed_in(uow_factory: UnitOfWorkFactory, tools: PortalTools, token: str | None) -> SignedIn | None:
    """Who a session cookie belongs to, or None for a missing, unknown, expired or revoked one."""
    if not token or len(token) > 128:
        return None
    with uow_factory() as uow:
        session = uow.merchant_users.session(_hash(token))
        if session is None or not session.is_valid_at(tools.clock.now()):
            return None
        user = uow.merchant_users.get(session.user_id)
    if user is None:
        return None
    return SignedIn(user, session.is_verified)


def end_session(uow_factory: UnitOfWorkFactory, tools: PortalTools, token: str | None) -> None:
    if not token or len(token) > 128:
        return
    with uow_factory() as uow:
        uow.merchant_users.revoke_session(_hash(token), tools.clock.now())
        uow.commit()


def begin_totp_setup(uow_factory: UnitOfWorkFactory, tools: PortalTools, user: MerchantUser) -> TotpEnrolment:
    """Stores a new secret (not yet required at sign-in) and returns it for the authenticator app."""
    secret = pyotp.random_base32()
    with uow_factory() as uow:
        uow.merchant_users.set_totp(
            user.id, tools.vault.seal(secret.encode(), context=_totp_context(user.id)), is_enabled=user.is_totp_enabled
        )
        uow.commit()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)
    return TotpEnrolment(secret, uri)


def confirm_totp_setup(uow_factory: UnitOfWorkFactory, tools: PortalTools, user: MerchantUser, code: str) -> None:
    """Switches TOTP on once the user proves the app holds the secret; raises TotpInvalid otherwise."""
    with uow_factory() as uow:
        sealed = uow.merchant_users.sealed_totp_secret(user.id)
        if sealed is None or not _code_ok(tools, user.id, sealed, code):
            raise TotpInvalid("the code is wrong or expired", param="code")
        uow.merchant_users.set_totp(user.id, sealed, is_enabled=True)
        uow.commit()


def verify_totp(uow_factory: UnitOfWorkFactory, tools: PortalTools, token: str, code: str) -> None:
    """Marks the session verified when ``code`` is the user's current TOTP; raises TotpInvalid otherwise.

    Wrong codes count towards the same lockout as wrong passwords: six digits are guessable otherwise.
    """
    now = tools.clock.now()
    with uow_factory() as uow:
        session = uow.merchant_users.session(_hash(token))
        if session is None or not session.is_valid_at(now):
            raise TotpInvalid("the session has ended; sign in again")
        user = uow.merchant_users.get(session.user_id)
        sealed = uow.merchant_users.sealed_totp_secret(session.user_id)
        if user is None or sealed is None:
            raise TotpInvalid("the session has ended; sign in again")
        if user.is_locked_at(now):
            raise LoginLocked("too many wrong codes; try again later")
        if _code_ok(tools, user.id, sealed, code):
            uow.merchant_users.mark_session_verified(session.token_hash)
            uow.merchant_users.record_successful_login(user.id)
            uow.commit()
            return
        locked_until = lock_after_failure(uow.merchant_users.record_failed_login(user.id), now)
        if locked_until is not None:
            uow.merchant_users.lock(user.id, locked_until)
            uow.merchant_users.revoke_session(session.token_hash, now)
        uow.commit()
    raise TotpInvalid("the code is wrong or expired", param="code")


def _code_ok(tools: PortalTools, user_id: str, sealed: str, code: str) -> bool:
    secret = tools.vault.open(sealed, context=_totp_context(user_id)).decode()
    # One step either side absorbs clock drift between the phone and the server.
    return code.isdigit() and pyotp.TOTP(secret).verify(code, for_time=tools.clock.now(), valid_window=1)


def _totp_context(user_id: str) -> str:
    return f"merchant_user_totp:{user_id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
