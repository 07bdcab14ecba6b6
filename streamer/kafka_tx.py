"""The kafka engine's two outputs, one per processing guarantee, behind the calls a checkpoint makes.

`begin()` opens a checkpoint, `produce()` sends a batch's messages as it is processed, `commit()` makes the
checkpoint's outputs and consumed offsets durable (KafkaException: it may not have), `resolve()` makes the outcome
of a failed commit final (the caller then reads it from the group's offsets), `abort()` gives up an open one,
`reset()` gives up a commit that never returned (a new producer), `close()` is bounded and never raises.
- TransactionalOutput (exactly once): one Kafka transaction per checkpoint with the outputs and the offsets.
- IdempotentOutput (at least once): an idempotent producer; offsets are committed to the group once every output
  of the checkpoint is delivered, so a crash re-emits outputs (identical bytes, the same alert_id), never loses one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fraudstream.errors import InfraError
from fraudstream.kafka_config import producer_config
from fraudstream.settings import Settings
from streamer.outputs import OutputMessage

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 60_000
_FENCED = {KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}


class Output(Protocol):
    def begin(self) -> None: ...

    def produce(self, messages: Sequence[OutputMessage]) -> None: ...

    def commit(self, offsets: list[TopicPartition], consumer: Consumer) -> None: ...

    def abort(self) -> None: ...

    def resolve(self) -> None: ...

    def reset(self) -> None: ...

    def close(self, timeout_s: float) -> None: ...


#: The longest produce() waits for room in a full local queue before the checkpoint is given up.
QUEUE_FULL_TIMEOUT_S = 30.0


def produce_all(producer: Producer, messages: Sequence[OutputMessage], **kwargs: Any) -> None:
    """Produce every message; KafkaException if the local queue stays full for QUEUE_FULL_TIMEOUT_S (a producer
    that delivers nothing any more, after a broker failure: the caller aborts and rebuilds)."""
    produce = producer.produce
    for message in messages:
        deadline = None
        while True:
            try:
                produce(message.topic, message.value, message.key, headers=message.headers, **kwargs)  # type: ignore[arg-type]
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                deadline = deadline or time.monotonic() + QUEUE_FULL_TIMEOUT_S
                if time.monotonic() > deadline:
                    full = KafkaError(KafkaError._QUEUE_FULL, "the producer's queue stayed full")
                    raise KafkaException(full) from None
                producer.poll(0.05)


def _flush(producer: Producer, timeout_s: float) -> int:
    """Messages still undelivered after a flush bounded by timeout_s (errors logged, never raised)."""
    try:
        return int(producer.flush(timeout_s))
    except (KafkaException, RuntimeError) as exc:
        log.warning("producer flush: %s", exc)
        return -1


class TransactionalOutput:
    """Exactly once: a checkpoint is one transaction; rebuilds the producer after a fatal error."""

    def __init__(self, settings: Settings, transactional_id: str) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.timeout_s = max(30.0, settings.kafka.request_timeout_s * 3)
        self._open = False
        self._stale = False  # a rebuild failed (the broker did not answer): the next begin() tries again
        self._producer = self._new_producer()

    def _rebuild(self) -> None:
        """A new producer; if the broker does not answer, keep the old one and try again at the next begin()."""
        try:
            self._producer = self._new_producer()
            self._stale = False
        except InfraError as exc:
            log.warning("%s; retried at the next checkpoint", exc)
            self._stale = True

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

    def begin(self) -> None:
        if self._stale:
            self._producer = self._new_producer()  # InfraError: this checkpoint is given up, the next tries again
            self._stale = False
        try:
            self._producer.begin_transaction()
            self._open = True
        except KafkaException as exc:
            self._recover(exc.args[0])
            raise

    def produce(self, messages: Sequence[OutputMessage]) -> None:
        try:
            produce_all(self._producer, messages)
        except KafkaException as exc:
            self._recover(exc.args[0])
            raise

    def commit(self, offsets: list[TopicPartition], consumer: Consumer) -> None:
        """Send the consumer's offsets into the transaction and commit it. KafkaException if it was aborted."""
        producer = self._producer
        try:
            if offsets:
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), self.timeout_s)
            self._commit_transaction(producer)
            self._open = False
        except KafkaException as exc:
            if producer is not self._producer:  # given up while stuck and replaced (its fencing is ours): no recovery
                raise
            self._recover(exc.args[0])
            raise

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
            self._rebuild()
            return
        self.abort()

    def abort(self, timeout_s: float | None = None, rebuild: bool = True) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self._producer.abort_transaction(self.timeout_s if timeout_s is None else timeout_s)
        except KafkaException as exc:
            log.error("abort_transaction failed (%s)%s", exc.args[0], "; rebuilding the producer" if rebuild else "")
            if rebuild:
                self._rebuild()

    def resolve(self) -> None:
        """After a failed commit: a new producer, whose init_transactions returns only once the broker has ended the
        old transaction, committed (it had reached the prepared commit) or aborted. InfraError if the broker does
        not answer."""
        self.reset()

    def reset(self) -> None:
        """A new producer with the same transactional id: the broker fences the old one (stuck in a call) and ends
        its transaction (aborted, unless its commit was already prepared: then it is completed)."""
        self._open = False
        self._producer = self._new_producer()

    def close(self, timeout_s: float) -> None:
        """Abort what is open and flush, each bounded by timeout_s; logs, never raises."""
        self.abort(timeout_s, rebuild=False)
        _flush(self._producer, timeout_s)


class IdempotentOutput:
    """At least once: outputs go out as batches are processed; a commit waits for their delivery, then commits the
    consumed offsets to the group. Nothing can be taken back: an abort only means the offsets stay behind."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout_s = max(30.0, settings.kafka.request_timeout_s * 3)
        self._failed: list[KafkaError] = []
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        return Producer(producer_config(self.settings, on_delivery=self._delivered))

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failed.append(error)

    def begin(self) -> None:
        self._failed.clear()

    def produce(self, messages: Sequence[OutputMessage]) -> None:
        try:
            produce_all(self._producer, messages)
        except KafkaException as exc:
            self._recover(exc.args[0])
            raise
        self._producer.poll(0)  # serve delivery reports of earlier messages

    def commit(self, offsets: list[TopicPartition], consumer: Consumer) -> None:
        """Wait until every output since begin() is delivered, then commit the offsets (KafkaException if not)."""
        left = self._producer.flush(self.timeout_s)
        if self._failed or left:
            error = self._failed[0] if self._failed else KafkaError(
                KafkaError._TIMED_OUT, f"{left} outputs not delivered within {self.timeout_s:.0f} s"
            )
            self._recover(error)
            raise KafkaException(error)
        if not offsets:
            return
        committed = consumer.commit(offsets=offsets, asynchronous=False) or []
        errors = [tp.error for tp in committed if tp.error is not None]
        if errors:
            raise KafkaException(errors[0])

    def _recover(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("fatal producer error (%s); rebuilding the producer", error.str())
            _flush(self._producer, 0)
            self._producer = self._new_producer()

    def abort(self) -> None:
        """Nothing to undo: outputs already delivered come again, identical, when the batches are replayed."""

    def resolve(self) -> None:
        """Nothing is in doubt: the offsets were committed to the group, or not, by one synchronous request."""

    def reset(self) -> None:
        self._producer = self._new_producer()

    def close(self, timeout_s: float) -> None:
        left = _flush(self._producer, timeout_s)
        if left:
            log.warning("%d outputs not delivered at close; their offsets were not committed", left)
