"""Rate limits with the ``limits`` library, counted in the database so every serve process agrees.

``limits`` ships memory, Redis, Memcached and MongoDB storages; an in-memory count would give each
``serve`` process its own budget, so ``SqlLimitsStorage`` keeps fixed-window counters in the
``rate_limit_counters`` table with one atomic upsert per hit, timed by the injected clock.
"""

from __future__ import annotations

from datetime import timedelta

from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from tianpay.adapters.db.tables import rate_limit_counters
from tianpay.ports.clock import Clock


class SqlLimitsStorage(Storage):
    STORAGE_SCHEME = None

    def __init__(self, engine: Engine, clock: Clock) -> None:
        super().__init__()
        self._engine = engine
        self._clock = clock

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock.now()
        table = rate_limit_counters
        insert = (postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert)(table)
        expired = table.c.expires_at <= now
        upsert = insert.values(key=key, count=amount, expires_at=now + timedelta(seconds=expiry))
        stmt = upsert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, amount), else_=table.c.count + amount),
                "expires_at": case((expired, now + timedelta(seconds=expiry)), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        with self._engine.begin() as connection:
            return int(connection.execute(stmt).scalar_one())

    def get(self, key: str) -> int:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(rate_limit_counters.c.count, rate_limit_counters.c.expires_at).where(
                    rate_limit_counters.c.key == key
                )
            ).first()
        if row is None or row[1] <= self._clock.now():
            return 0
        return int(row[0])

    def get_expiry(self, key: str) -> float:
        with self._engine.connect() as connection:
            expires_at = connection.execute(
                select(rate_limit_counters.c.expires_at).where(rate_limit_counters.c.key == key)
            ).scalar_one_or_none()
        return (expires_at or self._clock.now()).timestamp()

    def check(self) -> bool:
        try:
            with self._engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self._engine.begin() as connection:
            return connection.execute(delete(rate_limit_counters)).rowcount

    def clear(self, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(rate_limit_counters).where(rate_limit_counters.c.key == key))


class LimitsSendLimiter:
    """Applies every limit of a ``limits`` string (e.g. ``"1/minute;10/day"``) to each key."""

    def __init__(self, storage: Storage, limits: str) -> None:
        self._limiter = FixedWindowRateLimiter(storage)
        self._items: list[RateLimitItem] = parse_many(limits)

    def allow(self, key: str) -> bool:
        # Every window is tested before any is counted, so a refused send uses up no budget.
        if not all(self._limiter.test(item, key) for item in self._items):
            return False
        return all([self._limiter.hit(item, key) for item in self._items])
