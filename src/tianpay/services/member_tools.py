"""What member, SMS and wallet services need besides the database, bundled so signatures stay short.

Built once per process by the composition root (``Container.member_tools``); tests build their own
with a settable clock, a cheap argon2 profile and the real SMS outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.members import PasswordHasher, PiiCipher, SendLimiter, SmsSender


@dataclass(frozen=True, slots=True)
class MemberTools:
    clock: Clock
    ids: IdGenerator
    cipher: PiiCipher
    hasher: PasswordHasher
    sms: SmsSender
    sms_limiter: SendLimiter
    session_lifetime: timedelta = timedelta(hours=12)
    # A wallet payment above this amount (fen) needs an SMS code as well; None: never.
    wallet_sms_threshold_minor: int | None = None
    # A withdrawal of at least this amount (fen) waits for an operator's review; None: never.
    withdrawal_review_threshold_minor: int | None = None
