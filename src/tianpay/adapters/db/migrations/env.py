"""Alembic environment: runs the same migrations on SQLite and PostgreSQL.

The URL comes from the caller (``tianpay db upgrade`` passes the resolved database URL) so there is
one source of truth for configuration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tianpay.adapters.db.engine import make_engine
from tianpay.adapters.db.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


run_migrations_online()
