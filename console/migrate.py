"""Alembic migrations, run from code: `fraudstream console migrate`, and at every `fraudstream console` start.

The Alembic environment lives in console/migrations; its version table is `console_alembic_version`, so the console
can share a PostgreSQL database with other applications.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "console_alembic_version"


def alembic_config(engine: Engine) -> Config:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines (plugins, contexts) are noise here
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to `revision`; returns the revision the database is at afterwards."""
    config = alembic_config(engine)
    from alembic import command

    command.upgrade(config, revision)
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    if not inspect(engine).has_table(VERSION_TABLE):
        return None
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
