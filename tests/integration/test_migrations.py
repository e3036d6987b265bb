"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from tianpay.adapters.db import migrate
from tianpay.adapters.db.tables import metadata


def test_the_migrated_schema_matches_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == [], "tables.py changed without a migration: add a revision"


def test_upgrading_again_changes_nothing(engine: Engine) -> None:
    before = migrate.current_heads(engine)
    migrate.upgrade(engine)
    # One head: every revision extends the one before it (no parallel branches left unmerged).
    assert migrate.current_heads(engine) == before
    assert len(before) == 1
