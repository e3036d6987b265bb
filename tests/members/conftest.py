"""Fixtures for members, SMS codes and the payment password: real adapters, a cheap argon2 profile.

``member_tools`` is what ``Container.member_tools`` builds in production (vault cipher, argon2id, the
SMS outbox, database-backed send limits) except for the settable clock and the cheap hash cost.
"""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import Engine

from tianpay.adapters.clock import SettableClock
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.passwords import Argon2PasswordHasher
from tianpay.adapters.pii import VaultPiiCipher
from tianpay.adapters.rate_limits import LimitsSendLimiter, SqlLimitsStorage
from tianpay.adapters.sms import OutboxSmsSender
from tianpay.adapters.vault import AesGcmVault
from tianpay.services.member_tools import MemberTools
from tianpay.services.pii import phone_fingerprint

# Valid GB 11643 numbers with real region codes (110105 北京朝阳, 310104 上海徐汇).
ID_ZHANG = "11010519491231002X"
ID_LI = "310104198801010015"
PHONE_ZHANG = "13800138001"
PHONE_LI = "13900139002"


def cheap_hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)


def build_tools(engine: Engine, clock: SettableClock, *, wallet_sms_threshold_minor: int | None = None) -> MemberTools:
    vault = AesGcmVault(secrets.token_bytes(32))
    return MemberTools(
        clock=clock,
        ids=UlidGenerator(),
        cipher=VaultPiiCipher(vault),
        hasher=cheap_hasher(),
        sms=OutboxSmsSender(engine, vault, clock),
        sms_limiter=LimitsSendLimiter(SqlLimitsStorage(engine, clock), "1/minute;10/day"),
        wallet_sms_threshold_minor=wallet_sms_threshold_minor,
    )


@pytest.fixture
def member_tools(engine: Engine, clock: SettableClock) -> MemberTools:
    return build_tools(engine, clock)


def last_code(tools: MemberTools, phone: str) -> str:
    """The code in the newest SMS to ``phone``, read from the platform's outbox."""
    assert isinstance(tools.sms, OutboxSmsSender)
    messages = tools.sms.messages_to(phone_fingerprint(tools.cipher, phone), limit=1)
    assert messages, "no SMS was sent to this phone"
    found = re.search(r"\d{6}", messages[0].text)
    assert found is not None
    return found.group(0)
