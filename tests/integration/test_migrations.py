"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL alike, and the
newest revision comes off with a downgrade and back with an upgrade."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tianpay.adapters.db import migrate
from tianpay.adapters.db.tables import metadata

# Revision 0016's indexes, by table (the purges of services/housekeeping.py search through them).
HOUSEKEEPING_INDEXES = {
    "member_sessions": "ix_member_sessions_expires",
    "merchant_user_sessions": "ix_merchant_user_sessions_expires",
    "operator_sessions": "ix_operator_sessions_expires",
    "sms_codes": "ix_sms_codes_expires",
    "rate_limit_counters": "ix_rate_limit_counters_expires",
    "events": "ix_events_status_delivered",
}
# Revision 0018's, for the purges of idempotency records and of the SMS outbox.
PURGE_MORE_INDEXES = {
    "idempotency_records": "ix_idempotency_records_created",
    "sms_outbox": "ix_sms_outbox_created",
}


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


def downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_the_housekeeping_indexes_go_with_a_downgrade_and_return_with_the_upgrade(engine: Engine) -> None:
    head = migrate.current_heads(engine)
    downgrade(engine, "0015_console")
    assert migrate.current_heads(engine) == {"0015_console"}
    remaining = {index["name"] for table in HOUSEKEEPING_INDEXES for index in inspect(engine).get_indexes(table)}
    assert remaining.isdisjoint(HOUSEKEEPING_INDEXES.values())

    migrate.upgrade(engine)
    assert migrate.current_heads(engine) == head
    for table, name in HOUSEKEEPING_INDEXES.items():
        assert name in {index["name"] for index in inspect(engine).get_indexes(table)}, name
    test_the_migrated_schema_matches_the_declared_tables(engine)


def test_the_purge_indexes_of_0018_go_with_a_downgrade_and_return_with_the_upgrade(engine: Engine) -> None:
    head = migrate.current_heads(engine)
    downgrade(engine, "0017_exception_record_index")
    remaining = {index["name"] for table in PURGE_MORE_INDEXES for index in inspect(engine).get_indexes(table)}
    assert remaining.isdisjoint(PURGE_MORE_INDEXES.values())

    migrate.upgrade(engine)
    assert migrate.current_heads(engine) == head
    for table, name in PURGE_MORE_INDEXES.items():
        assert name in {index["name"] for index in inspect(engine).get_indexes(table)}, name
    test_the_migrated_schema_matches_the_declared_tables(engine)


def test_an_index_an_operator_built_beforehand_is_kept_by_the_upgrade(engine: Engine) -> None:
    # docs/deploy.md: on a large live table the index is built CONCURRENTLY by hand before the upgrade.
    downgrade(engine, "0015_console")
    concurrently = "CONCURRENTLY " if engine.dialect.name == "postgresql" else ""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            f"CREATE INDEX {concurrently}ix_events_status_delivered ON events (status, delivered_at)"
        )
    migrate.upgrade(engine)
    assert "ix_events_status_delivered" in {index["name"] for index in inspect(engine).get_indexes("events")}
    test_the_migrated_schema_matches_the_declared_tables(engine)
