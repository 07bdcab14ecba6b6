"""Everything `fraudstream console` runs: the migrations, the alert and score consumer threads, the worker thread of
training runs and backtests, and the web app under uvicorn."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from console.cases import LabelPublisher, kafka_label_publisher
from console.db import make_engine, session_factory
from console.ingest import AlertIngestor
from console.jobs import JobRunner
from console.migrate import upgrade
from console.score_ingest import ScoreIngestor
from console.web import create_app
from fraudstream.clock import Clock, SystemClock
from fraudstream.settings import Settings


@dataclass
class Console:
    app: FastAPI
    engine: Engine
    ingestor: AlertIngestor | None
    jobs: JobRunner
    scores: ScoreIngestor | None = None


def build_console(
    settings: Settings, *, clock: Clock | None = None, publish: LabelPublisher | None = None, consume: bool = True
) -> Console:
    """Migrate the database, then the app; the worker of training runs and backtests starts and stops with the app,
    and with `consume` the alerts and scores consumers too."""
    clock = clock or SystemClock()
    engine = make_engine(settings)
    upgrade(engine)
    sessions = session_factory(engine)
    ingestor = AlertIngestor(settings, sessions, clock) if consume else None
    scores = ScoreIngestor(settings, sessions) if consume else None
    jobs = JobRunner(settings, sessions, clock)

    def started() -> None:
        jobs.start()
        for consumer in (ingestor, scores):
            if consumer is not None:
                consumer.start()

    def stopped() -> None:
        for consumer in (ingestor, scores):
            if consumer is not None:
                consumer.stop()
        jobs.stop()

    app = create_app(
        settings,
        sessions,
        clock=clock,
        publish_label=publish or kafka_label_publisher(settings),
        jobs=jobs,
        on_startup=started,
        on_shutdown=stopped,
    )
    return Console(app, engine, ingestor, jobs, scores)


def serve(settings: Settings, *, host: str, port: int, consume: bool = True) -> None:
    import uvicorn

    console = build_console(settings, consume=consume)
    try:
        uvicorn.run(console.app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False)
    finally:
        console.engine.dispose()
