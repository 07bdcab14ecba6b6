"""The console's database: one engine and a session factory from the settings.

SQLite file in the embedded state folder by default (WAL, a busy timeout, foreign keys on), PostgreSQL through
psycopg 3 when FRAUD_DATABASE__URL says so. Tables are created by the Alembic migrations (console.migrate), never by
`create_all`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from fraudstream.settings import Settings


def engine_url(settings: Settings) -> str:
    """The SQLAlchemy URL: postgres:// and postgresql:// go through psycopg 3."""
    url = settings.database_url
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(settings: Settings) -> bool:
    return engine_url(settings).startswith("sqlite")


def make_engine(settings: Settings) -> Engine:
    url = engine_url(settings)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=settings.database.echo, connect_args={"check_same_thread": False, "timeout": 10}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=settings.database.echo, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def describe(settings: Settings) -> str:
    """The database for messages: the URL without its password."""
    return make_url(engine_url(settings)).render_as_string(hide_password=True)
