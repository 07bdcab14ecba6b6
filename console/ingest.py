"""The alerts topic into the database: a background consumer thread in the console's own consumer group.

read_committed (only alerts of committed streamer transactions), manual commits: a batch's offsets are committed
once its alerts are in the database, so a crash re-reads them and store_alerts skips those already stored (at least
once into an idempotent insert). A database failure keeps the batch and retries it; nothing is skipped.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, Message
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from console.cases import IncomingAlert, store_alerts
from fraudstream.clock import Clock
from fraudstream.contracts import Alert
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

log = logging.getLogger(__name__)


def decode(messages: list[Message], topic: str) -> list[IncomingAlert]:
    """The batch's alerts; a record that is not an Alert is logged and skipped (it cannot be worked on)."""
    incoming: list[IncomingAlert] = []
    for message in messages:
        raw = message.value() or b""
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            log.warning(
                "skipping a malformed alert at %s[%s]@%s: %s",
                topic, message.partition(), message.offset(), exc.errors()[0]["msg"],
            )
            continue
        incoming.append(IncomingAlert(alert, raw.decode(), int(message.partition() or 0), int(message.offset() or 0)))
    return incoming


class AlertIngestor:
    """Consumes `alerts` into the database until stopped. `consumed` counts the records it committed, `stored` the
    alerts it inserted (a record re-read after a crash is consumed again but not stored again)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.stored = 0
        self.consumed = 0
        self.batches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        topic = self.settings.topics.alerts
        consumer = Consumer(consumer_config(self.settings, self.settings.console.consumer_group))
        consumer.subscribe([topic])
        try:
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=500, timeout=0.5)
                records = []
                for message in messages:
                    error = message.error()
                    if error is None:
                        records.append(message)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("reading %s from %s: %s", topic, self.settings.bootstrap_servers, error.str())
                if records and self._store_until_done(decode(records, topic)):
                    consumer.commit(asynchronous=False)
                    self.consumed += len(records)
                    self.batches += 1
        finally:
            consumer.close()

    def _store_until_done(self, incoming: list[IncomingAlert]) -> bool:
        """True once stored; False when stopped first (the offsets are then not committed)."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                with self.sessions.begin() as db:
                    self.stored += store_alerts(db, incoming, received_at=self.clock.now())
                return True
            except Exception as exc:  # noqa: BLE001 - the loop's one broad except: the database is down; retry
                log.warning("cannot store %d alerts in the database (%s); retry in %.1f s", len(incoming), exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
        return False
