"""Runs the Alembic migrations shipped inside the package, on SQLite or PostgreSQL.

The migrations live in the package (not beside it) so ``tianpay db upgrade`` works from any
directory and from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Brings the database to the newest schema; running it again changes nothing."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_heads(engine: Engine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def is_at_head(engine: Engine) -> bool:
    """Whether the database carries exactly the newest revisions shipped in the package.

    Readiness probes ask this: a process of a new release must not take traffic on a database that
    ``tianpay db upgrade`` has not brought forward yet (docs/deploy.md, "Health checks").
    """
    from alembic.script import ScriptDirectory

    shipped = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    return current_heads(engine) == shipped
