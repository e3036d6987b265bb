"""The composition root: builds the engine, unit-of-work factory, clock and ids from Settings.

Nothing is built at import time; entry points call ``build_container`` once per process and pass
the pieces down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from sqlalchemy import Engine

from tianpay.adapters.clock import OffsetFileClock, SystemClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.adapters.keys import FileKeyIssuer, PlatformSigningKey, load_or_create_platform_key
from tianpay.adapters.passwords import Argon2PasswordHasher
from tianpay.adapters.pii import VaultPiiCipher
from tianpay.adapters.rate_limits import LimitsSendLimiter, SqlLimitsStorage
from tianpay.adapters.sms import OutboxSmsSender
from tianpay.adapters.vault import AesGcmVault
from tianpay.channels.registry import ChannelRegistry, load_channels
from tianpay.config import Settings
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWorkFactory
from tianpay.services.member_tools import MemberTools


@dataclass
class Container:
    settings: Settings
    engine: Engine
    clock: Clock
    ids: IdGenerator
    uow: UnitOfWorkFactory = field(init=False)

    def __post_init__(self) -> None:
        engine, clock, ids = self.engine, self.clock, self.ids

        def new_unit_of_work() -> SqlUnitOfWork:
            return SqlUnitOfWork(engine, clock, ids)

        self.uow = new_unit_of_work

    @cached_property
    def vault(self) -> AesGcmVault:
        """The secrets vault; its key file is created on first use when no key is configured."""
        configured = self.settings.vault_key_hex
        if configured is not None:
            return AesGcmVault.from_hex(configured.get_secret_value())
        return AesGcmVault.from_key_file(self.settings.keys_dir / "vault.key")

    @cached_property
    def sms_outbox(self) -> OutboxSmsSender:
        return OutboxSmsSender(self.engine, self.vault, self.clock)

    @cached_property
    def member_tools(self) -> MemberTools:
        """What member, SMS and wallet services need: PII cipher, argon2id, SMS outbox, send limits."""
        settings = self.settings
        return MemberTools(
            clock=self.clock,
            ids=self.ids,
            cipher=VaultPiiCipher(self.vault),
            hasher=Argon2PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_cost_kib=settings.argon2_memory_cost_kib,
                parallelism=settings.argon2_parallelism,
                max_concurrent=settings.argon2_max_concurrent,
            ),
            sms=self.sms_outbox,
            sms_limiter=LimitsSendLimiter(SqlLimitsStorage(self.engine, self.clock), settings.sms_send_limits),
            session_lifetime=timedelta(seconds=settings.member_session_lifetime_s),
            wallet_sms_threshold_minor=settings.wallet_sms_threshold_minor,
            withdrawal_review_threshold_minor=settings.withdrawal_review_threshold_minor,
        )

    @cached_property
    def key_issuer(self) -> FileKeyIssuer:
        return FileKeyIssuer(self.settings.data_dir / "merchants")

    @cached_property
    def platform_key(self) -> PlatformSigningKey:
        """The platform's ed25519 response-signing key, created on first use."""
        return load_or_create_platform_key(self.settings.keys_dir)

    @cached_property
    def channels(self) -> ChannelRegistry:
        """The bank channels this platform was onboarded to (read from the data directory)."""
        return load_channels(self.settings.data_dir, timeout_s=self.settings.bank_timeout_s, clock=self.clock.now)

    @cached_property
    def read_engine(self) -> Engine:
        """The engine queries read from: ``TIANPAY_READ_DATABASE_URL`` when set, else the primary's URL,
        opened read-only either way (docs/statistics.md, "Read replica")."""
        return make_engine(self.settings.resolved_read_database_url, pool_size=5, read_only=True)

    @property
    def read_uow(self) -> UnitOfWorkFactory:
        """Units of work on the read engine, for lists, exports and statistics: they never commit."""
        engine, clock, ids = self.read_engine, self.clock, self.ids

        def new_read_unit_of_work() -> SqlUnitOfWork:
            return SqlUnitOfWork(engine, clock, ids)

        return new_read_unit_of_work

    def upgrade_database(self) -> None:
        migrate.upgrade(self.engine)

    def close(self) -> None:
        if "channels" in self.__dict__:
            self.channels.close()
        if "read_engine" in self.__dict__:
            self.read_engine.dispose()
        self.engine.dispose()


def build_container(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    if clock is None:
        clock = OffsetFileClock(settings.clock_file) if settings.clock_file is not None else SystemClock()
    return Container(settings=settings, engine=engine, clock=clock, ids=UlidGenerator())
