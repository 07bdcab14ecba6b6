"""The scores topic into the database: each card's recent transactions and their scores, for the alert and case pages.

A second background consumer in its own group (console.scores_consumer_group), read_committed, manual commits after
the batch is stored (at least once into an insert keyed by transaction_id). Retention: the newest
console.scores_per_card records of each card in the batch are kept, older ones are deleted in the same transaction.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, Message
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from console.schema import CardScore
from fraudstream.contracts import ScoreRecord
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

log = logging.getLogger(__name__)


def decode_scores(messages: list[Message], topic: str) -> list[ScoreRecord]:
    records = []
    for message in messages:
        try:
            records.append(ScoreRecord.model_validate_json(message.value() or b""))
        except ValidationError as exc:
            log.warning("skipping a malformed score record at %s[%s]@%s: %s",
                        topic, message.partition(), message.offset(), exc.errors()[0]["msg"])
    return records


def store_scores(db: Session, records: list[ScoreRecord], *, keep_per_card: int) -> int:
    """Insert the records not stored yet, then keep only the newest `keep_per_card` of each card touched."""
    by_txn = {r.transaction_id: r for r in records}
    known = set(db.scalars(select(CardScore.transaction_id).where(CardScore.transaction_id.in_(list(by_txn)))))
    new = [r for txn, r in by_txn.items() if txn not in known]
    db.add_all(CardScore(transaction_id=r.transaction_id, card_id=r.user_id, transaction_time=r.timestamp,
                         score=r.score, threshold=r.threshold, alerted=r.alerted, model_version=r.model_version,
                         scorer=r.scorer, produced_at=r.produced_at) for r in new)
    db.flush()
    for card in sorted({r.user_id for r in new}):
        newest = (select(CardScore.id).where(CardScore.card_id == card)
                  .order_by(CardScore.transaction_time.desc(), CardScore.id.desc()).limit(keep_per_card))
        db.execute(delete(CardScore).where(CardScore.card_id == card, CardScore.id.not_in(newest)))
    return len(new)


def recent_scores(db: Session, card_id: str, limit: int) -> list[CardScore]:
    return list(db.scalars(select(CardScore).where(CardScore.card_id == card_id)
                           .order_by(CardScore.transaction_time.desc(), CardScore.id.desc()).limit(limit)))


class ScoreIngestor:
    """Consumes `scores` into card_scores until stopped; `stored` counts the records inserted."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.stored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-scores", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        topic = self.settings.topics.scores
        consumer = Consumer(consumer_config(self.settings, self.settings.console.scores_consumer_group))
        consumer.subscribe([topic])
        try:
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=2000, timeout=0.5)
                good = []
                for message in messages:
                    error = message.error()
                    if error is None:
                        good.append(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("reading %s from %s: %s", topic, self.settings.bootstrap_servers, error.str())
                if good and self._store_until_done(decode_scores(good, topic)):
                    consumer.commit(asynchronous=False)
        finally:
            consumer.close()

    def _store_until_done(self, records: list[ScoreRecord]) -> bool:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with self.sessions.begin() as db:
                    self.stored += store_scores(db, records, keep_per_card=self.settings.console.scores_per_card)
                return True
            except Exception as exc:  # noqa: BLE001 - the loop's one broad except: the database is down; retry
                log.warning("cannot store %d score records (%s); retry in %.1f s", len(records), exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        return False
