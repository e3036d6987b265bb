"""The composition root: builds the engine, unit-of-work factory, clock and ids from Settings.

Nothing is built at import time; entry points call ``build_container`` once per process and pass
the pieces down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from tianpay.adapters.clock import SystemClock
from tianpay.adapters.db import migrate
from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.unit_of_work import SqlUnitOfWork
from tianpay.adapters.ids import UlidGenerator
from tianpay.config import Settings
from tianpay.ports.clock import Clock, IdGenerator
from tianpay.ports.unit_of_work import UnitOfWorkFactory


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

    def upgrade_database(self) -> None:
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build_container(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    return Container(settings=settings, engine=engine, clock=clock or SystemClock(), ids=UlidGenerator())
