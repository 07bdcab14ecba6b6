"""The transactional producer of the kafka engine: one transaction per batch with the outputs and consumed offsets."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from fraudstream.errors import InfraError
from fraudstream.kafka_config import producer_config
from fraudstream.settings import Settings
from streamer.outputs import OutputMessage

if TYPE_CHECKING:
    from streamer.core import BatchResult, RawRecord

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 60_000
_FENCED = {KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}


class TransactionalOutput:
    """Produces a batch's messages and offsets atomically; rebuilds itself after a fatal producer error."""

    def __init__(self, settings: Settings, transactional_id: str) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.timeout_s = max(30.0, settings.kafka.request_timeout_s * 3)
        self._open = False
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        config = producer_config(
            self.settings,
            **{"transactional.id": self.transactional_id, "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS},
        )
        producer = Producer(config)
        try:
            # Also aborts a transaction left open by a previous incarnation with the same id (a crashed worker).
            producer.init_transactions(self.timeout_s)
        except KafkaException as exc:
            raise InfraError(
                f"cannot start the transactional producer {self.transactional_id} at "
                f"{self.settings.bootstrap_servers}: {exc.args[0].str()}"
            ) from None
        return producer

    def commit(
        self, messages: Sequence[OutputMessage], next_offsets: dict[tuple[str, int], int], consumer: Consumer
    ) -> None:
        """Begin, produce every message, send the consumer's offsets, commit. KafkaException if aborted."""
        producer = self._producer
        try:
            producer.begin_transaction()
            self._open = True
            for message in messages:
                self._produce(producer, message)
            offsets = [TopicPartition(t, p, off) for (t, p), off in sorted(next_offsets.items())]
            if offsets:
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), self.timeout_s)
            self._commit_transaction(producer)
            self._open = False
        except KafkaException as exc:
            self._recover(exc.args[0])
            raise

    @staticmethod
    def _produce(producer: Producer, message: OutputMessage) -> None:
        while True:
            try:
                producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=list[tuple[str, str | bytes | None]](message.headers),
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.05)

    def _commit_transaction(self, producer: Producer) -> None:
        for _ in range(5):
            try:
                producer.commit_transaction(self.timeout_s)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable():
                    raise
                log.warning("commit_transaction retriable error: %s; retrying", error.str())
        producer.commit_transaction(self.timeout_s)

    def _recover(self, error: Any) -> None:
        code = error.code() if isinstance(error, KafkaError) else None
        if code in _FENCED:
            self._open = False
            raise InfraError(
                f"producer {self.transactional_id} was fenced: another worker uses the same transactional id; "
                "give each worker its own --instance-id"
            ) from None
        if isinstance(error, KafkaError) and error.fatal():
            log.error("fatal producer error (%s); rebuilding the producer", error.str())
            self._open = False
            self._producer = self._new_producer()
            return
        self.abort_if_open()

    def abort_if_open(self) -> None:
        if not self._open:
            return
        try:
            self._producer.abort_transaction(self.timeout_s)
        except KafkaException as exc:
            log.error("abort_transaction failed (%s); rebuilding the producer", exc.args[0])
            self._producer = self._new_producer()
        self._open = False

    def close(self) -> None:
        self.abort_if_open()
        self._producer.flush(self.timeout_s)


@dataclass
class InFlight:
    """A batch whose transaction runs in the background: the future gives the commit's wall time, or raises
    KafkaException if the transaction was aborted."""

    records: list[RawRecord]
    result: BatchResult
    future: Future[float]


class BackgroundCommitter:
    """Runs one batch's transaction at a time on a thread of its own, so the worker processes the next batch
    meanwhile. The caller waits for a future before submitting the next (one transaction open at most)."""

    def __init__(self, output: TransactionalOutput, consumer: Consumer) -> None:
        self.output, self.consumer = output, consumer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-transaction")

    def submit(self, messages: Sequence[OutputMessage], next_offsets: dict[tuple[str, int], int]) -> Future[float]:
        return self._thread.submit(self._commit, messages, next_offsets)

    def _commit(self, messages: Sequence[OutputMessage], next_offsets: dict[tuple[str, int], int]) -> float:
        self.output.commit(messages, next_offsets, self.consumer)
        return time.time()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
