"""Everything `fraudstream console` runs: the migrations, the alert consumer thread and the web app under uvicorn."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from console.cases import LabelPublisher, kafka_label_publisher
from console.db import make_engine, session_factory
from console.ingest import AlertIngestor
from console.migrate import upgrade
from console.web import create_app
from fraudstream.clock import Clock, SystemClock
from fraudstream.settings import Settings


@dataclass
class Console:
    app: FastAPI
    engine: Engine
    ingestor: AlertIngestor | None


def build_console(
    settings: Settings, *, clock: Clock | None = None, publish: LabelPublisher | None = None, consume: bool = True
) -> Console:
    """Migrate the database, then the app; with `consume`, the alert consumer starts and stops with the app."""
    clock = clock or SystemClock()
    engine = make_engine(settings)
    upgrade(engine)
    sessions = session_factory(engine)
    ingestor = AlertIngestor(settings, sessions, clock) if consume else None
    app = create_app(
        settings,
        sessions,
        clock=clock,
        publish_label=publish or kafka_label_publisher(settings),
        on_startup=ingestor.start if ingestor is not None else None,
        on_shutdown=ingestor.stop if ingestor is not None else None,
    )
    return Console(app, engine, ingestor)


def serve(settings: Settings, *, host: str, port: int, consume: bool = True) -> None:
    import uvicorn

    console = build_console(settings, consume=consume)
    try:
        uvicorn.run(console.app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False)
    finally:
        console.engine.dispose()
