"""The console's second consumer, of `scores`, against the real broker: its own group, read_committed (a record of
an aborted transaction is never stored), each card's newest N kept, offsets committed once stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from sqlalchemy import select

from console.db import make_engine, session_factory
from console.migrate import upgrade
from console.schema import CardScore
from console.score_ingest import ScoreIngestor
from fraudstream.contracts import ScoreRecord
from fraudstream.kafka_config import producer_config
from fraudstream.settings import Settings
from tests.console_support import T0
from tests.streamer_kafka_support import isolated_settings, publish, wait_until

pytestmark = pytest.mark.integration


def _record(n: int, card: str) -> tuple[str, str]:
    at = T0 + timedelta(minutes=n)
    record = ScoreRecord(transaction_id=f"T{n}", user_id=card, timestamp=at, score=0.1 * (n % 10), threshold=0.5,
                         alerted=False, model_version="v1", scorer="stack", produced_at=at)
    return card, record.model_dump_json()


def _stored(sessions: object) -> set[str]:
    with sessions() as db:  # type: ignore[operator]
        return set(db.scalars(select(CardScore.transaction_id)))


def test_scores_are_stored_read_committed_with_retention(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry").with_overrides(
        database={"url": f"sqlite:///{tmp_path / 'console.db'}"},
        console={"scores_consumer_group": f"{unique_name}-scores", "scores_per_card": 3},
    )
    engine = make_engine(settings)
    upgrade(engine)
    sessions = session_factory(engine)
    aborted = Producer(producer_config(settings, **{"transactional.id": f"{unique_name}-aborted"}))
    aborted.init_transactions(30)
    aborted.begin_transaction()
    aborted.produce(settings.topics.scores, key="C1", value=_record(99, "C1")[1])
    aborted.flush(30)
    aborted.abort_transaction(30)
    publish(settings, [_record(n, "C1") for n in range(5)] + [_record(7, "C2")], topic=settings.topics.scores)

    first = ScoreIngestor(settings, sessions)
    first.start()
    try:
        wait_until(lambda: first.stored >= 6, 60, "the score records in the database")
    finally:
        first.stop()
    assert first.stored == 6
    assert _stored(sessions) == {"T2", "T3", "T4", "T7"}  # C1's newest 3, C2's one; T99 was aborted

    publish(settings, [_record(5, "C1")], topic=settings.topics.scores)
    second = ScoreIngestor(settings, sessions)  # same group: starts after the committed offsets
    second.start()
    try:
        wait_until(lambda: second.stored >= 1, 60, "the new score record")
    finally:
        second.stop()
    assert second.stored == 1
    assert _stored(sessions) == {"T3", "T4", "T5", "T7"}
    engine.dispose()
