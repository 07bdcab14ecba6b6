"""Alembic environment of the console: the engine comes from console.migrate (config.attributes['engine'])."""

from __future__ import annotations

from alembic import context

from console.migrate import VERSION_TABLE
from console.schema import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
