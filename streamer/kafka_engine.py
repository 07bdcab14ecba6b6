"""The confluent-kafka engine: consume a batch, run the core, then ONE Kafka transaction with the outputs and offsets.

Exactly once for read_committed consumers: outputs and consumed offsets commit together; a crash anywhere replays
the batch, and the idempotent Redis side returns the cached outputs, so the replay produces identical bytes.
A batch's transaction runs on a background thread while the next batch is fetched and processed (its state goes to
Redis); the next transaction starts only once the previous one has ended. If one aborts, the consumer rewinds to
its batch's start and both batches come again as replays: Redis keeps the outputs of the batch before the last.
Redis down: the batch is held, partitions paused, retried with exponential backoff; nothing is committed meanwhile.
Labels come through a second consumer (group `<group>.labels`): one group over both topics lets the sticky assignor
give one worker every transactions partition and the other only labels. Labels are applied idempotently per offset
in Redis, and their offsets are committed right after the batch's transaction (at least once, replays harmless).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from fraudstream.errors import InfraError, StateStoreError
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings
from streamer.core import BatchResult, RawRecord, StreamProcessor
from streamer.kafka_tx import BackgroundCommitter, InFlight, TransactionalOutput
from streamer.metrics import RecentValues, StreamMetrics

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
#: A killed worker's partitions move on after this long; librdkafka's 45 s default stalls a restart for that long.
SESSION_TIMEOUT_MS = 10_000


#: Prefetched records librdkafka keeps per consumer (its default, 64 MiB, is what a worker behind a backlog holds in
#: RSS); 16 MiB is still several 2,000-record batches ahead.
PREFETCH_KBYTES = 16_384
#: How many recent per-record latencies a worker keeps for its summary.
LATENCY_WINDOW = 100_000
#: With --idle-exit, how long a worker waits for its first assignment before idleness counts.
UNASSIGNED_GRACE_S = 60.0

@dataclass
class EngineStats:
    batches: int = 0
    records: int = 0
    events: int = 0
    alerts: int = 0
    dlq: int = 0
    late: int = 0
    replayed: int = 0
    redis_retries: int = 0
    kafka_retries: int = 0
    started: float = field(default_factory=time.monotonic)
    first_data_at: float | None = None  # monotonic time the first records arrived
    last_commit_at: float | None = None  # monotonic time the last batch committed
    #: broker timestamp -> transaction committed, seconds, for the most recent records (allocated once: no growth)
    latencies_s: RecentValues = field(default_factory=lambda: RecentValues(LATENCY_WINDOW))


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


def to_raw(message: Message) -> RawRecord:
    ts_type, ts = message.timestamp()
    headers: list[Any] = list(message.headers() or [])
    return RawRecord(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=_as_bytes(message.key()),
        value=_as_bytes(message.value()),
        headers=[(str(name), _as_bytes(value)) for name, value in headers],
        timestamp_ms=ts if ts_type != 0 else None,
    )


class KafkaEngine:
    """One worker of the consumer group. `run()` returns when stopped, idle, or after max_events."""

    def __init__(
        self,
        settings: Settings,
        processor: StreamProcessor,
        metrics: StreamMetrics | None = None,
        *,
        instance_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.cfg = settings.streamer
        self.processor = processor
        self.metrics = metrics
        self.instance_id = instance_id or socket.gethostname()
        self.stop_event = threading.Event()
        self.stats = EngineStats()
        self._sleep = sleep
        self._held: list[RawRecord] = []
        self._paused = False
        self._assigned: set[tuple[str, int]] = set()
        self._last_activity = time.monotonic()
        self._last_lag = 0.0
        extra = {"client.id": self.client_id, "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000,
                 "queued.max.messages.kbytes": PREFETCH_KBYTES}
        self.consumer = Consumer(consumer_config(settings, self.cfg.consumer_group, **extra))
        self.label_consumer = Consumer(consumer_config(settings, f"{self.cfg.consumer_group}.labels", **extra))
        self.output = TransactionalOutput(settings, f"{self.cfg.transactional_id}-{self.instance_id}")
        self.committer = BackgroundCommitter(self.output, self.consumer)
        self._in_flight: InFlight | None = None

    @property
    def client_id(self) -> str:
        return f"{self.settings.kafka.client_id}-{self.instance_id}"

    # ------------------------------------------------------------------ rebalance callbacks (inside consume())
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._last_activity = time.monotonic()  # joining the group (slow under load) is not idleness
        if self._paused and partitions:
            consumer.pause(partitions)
        log.info("assigned %s", _names(partitions), extra={"event": "assign", "instance": self.instance_id})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The transaction in flight ends before the partitions go (an aborted one rewinds only the partitions kept);
        # a batch held during a Redis outage loses the revoked partitions' records (the new owner reads them from
        # the committed offsets).
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        if not self._settle(after=self._held):
            self._held = []  # rewound with the aborted batch: it comes again from the consumer
        self.output.abort_if_open()
        self._held = [r for r in self._held if (r.topic, r.partition) not in gone]
        log.info("revoked %s", _names(partitions), extra={"event": "revoke", "instance": self.instance_id})

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s", _names(partitions), extra={"event": "lost", "instance": self.instance_id})
        self._on_revoke(consumer, partitions)

    # ------------------------------------------------------------------ main loop
    def run(self, *, max_events: int | None = None, idle_exit_s: float | None = None) -> EngineStats:
        topics = [self.settings.topics.transactions, self.settings.topics.labels]
        callbacks = {"on_assign": self._on_assign, "on_revoke": self._on_revoke, "on_lost": self._on_lost}
        self.consumer.subscribe(topics[:1], **callbacks)
        self.label_consumer.subscribe(topics[1:], **callbacks)
        log.info("kafka engine %s consuming %s as group %s", self.instance_id, topics, self.cfg.consumer_group)
        wait_s = self.cfg.poll_timeout_s
        self._last_activity = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self._in_flight is not None and self._in_flight.future.done():
                    self._settle()
                if max_events is not None and self.stats.records >= max_events:
                    break
                records = self._poll(wait_s)
                if not records:
                    self._settle()
                    if idle_exit_s is not None and self._idle_for(idle_exit_s):
                        log.info("idle for %.1f s, stopping", idle_exit_s)
                        break
                    self._report_lag()
                    continue
                self._last_activity = time.monotonic()
                if self.stats.first_data_at is None:
                    self.stats.first_data_at = self._last_activity
                self._handle(records)
                self._last_activity = time.monotonic()  # a batch held through an outage is not idleness
                self._report_lag()
            self._settle()
        finally:
            self.close()
        return self.stats

    def _idle_for(self, idle_exit_s: float) -> bool:
        """Idle this long with transactions partitions assigned (a restart waits for the dead member's session to
        expire; the labels group, joined apart, may assign its partitions sooner)."""
        now = time.monotonic()
        txn_topic = self.settings.topics.transactions
        assigned = any(topic == txn_topic for topic, _ in self._assigned)
        if not assigned and now - self.stats.started < UNASSIGNED_GRACE_S:
            return False
        return now - self._last_activity >= idle_exit_s

    def _poll(self, idle_wait_s: float) -> list[RawRecord]:
        """The next batch: what is already fetched, never waiting for a full batch.

        Blocks (up to idle_wait_s) only while nothing is there, then lingers micro_batch_max_wait_ms for more.
        Records that arrive while a batch is processed form the next one, so batches grow with the load and a
        quiet stream is not held back waiting to fill one.
        """
        size, linger_s = self.cfg.poll_batch_size, self.cfg.micro_batch_max_wait_ms / 1000.0
        messages = self.consumer.consume(num_messages=size, timeout=0)
        if not messages:
            messages = self.consumer.consume(num_messages=1, timeout=idle_wait_s)
        if messages and len(messages) < size:
            messages += self.consumer.consume(num_messages=size - len(messages), timeout=linger_s)
        records = self._records(messages)
        labels = self.label_consumer.consume(num_messages=size, timeout=0 if records else 0.01)
        return records + self._records(labels)

    def _records(self, messages: list[Message]) -> list[RawRecord]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_raw(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                if error.fatal():
                    raise InfraError(f"Kafka consumer failed: {error.str()}")
                log.warning("consume error: %s", error.str())
        return records

    def _handle(self, records: list[RawRecord]) -> None:
        """Process and commit one batch; on a Redis failure hold it (partitions paused) and retry with backoff."""
        self._held = records
        delay = 0.1
        while self._held:
            try:
                result = self.processor.process(self._held)
            except StateStoreError as exc:
                self._pause()
                self.stats.redis_retries += 1
                if self.metrics is not None:
                    self.metrics.redis_retries.inc()
                log.warning("state store unavailable (%s); retrying in %.1f s, nothing committed", exc, delay)
                self._wait_serving_callbacks(delay)
                delay = min(delay * 2, self.cfg.redis_retry_max_s)
                if self.stop_event.is_set():
                    log.warning("stopping during a state store outage; the held batch stays uncommitted")
                    self._held = []
                continue
            batch, self._held = self._held, []
            if self._settle(after=batch):  # else both were rewound: they come again, replayed from Redis
                future = self.committer.submit(result.messages, self._split_offsets(result)[0])
                self._in_flight = InFlight(batch, result, future)
        self._resume()

    def _split_offsets(self, result: BatchResult) -> tuple[dict[tuple[str, int], int], list[TopicPartition]]:
        """A batch's next offsets: the transactions topic's (sent in its transaction), the labels' (committed after)."""
        txn_topic = self.settings.topics.transactions
        txn = {tp: off for tp, off in result.next_offsets.items() if tp[0] == txn_topic}
        labels = [TopicPartition(t, p, off) for (t, p), off in result.next_offsets.items() if t != txn_topic]
        return txn, labels

    def _settle(self, after: list[RawRecord] | None = None) -> bool:
        """Wait for the transaction in flight. True if it committed (or none was in flight); False if it aborted:
        the consumer is rewound to its batch's start, and to the start of `after` (records fetched since)."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return True
        try:
            committed_at = flight.future.result()
        except KafkaException as exc:
            self.stats.kafka_retries += 1
            log.warning("transaction aborted (%s); rewinding to the batch start", exc.args[0])
            self._rewind(flight.records + (after or []))
            return False
        _, labels = self._split_offsets(flight.result)
        if labels:
            try:
                self.label_consumer.commit(offsets=labels, asynchronous=False)
            except KafkaException as exc:  # applied idempotently: a replay of these labels changes nothing
                log.warning("label offsets not committed (%s); they will be re-read and ignored", exc.args[0])
        self._account(flight.records, flight.result, committed_at)
        return True

    def _rewind(self, records: list[RawRecord]) -> None:
        first: dict[tuple[str, int], int] = {}
        for r in records:
            first[(r.topic, r.partition)] = min(first.get((r.topic, r.partition), r.offset), r.offset)
        for (topic, partition), offset in first.items():
            if (topic, partition) in self._assigned:
                consumer = self.consumer if topic == self.settings.topics.transactions else self.label_consumer
                consumer.seek(TopicPartition(topic, partition, offset))

    def _account(self, records: list[RawRecord], result: BatchResult, committed: float) -> None:
        c, s = result.counts, self.stats
        s.batches += 1
        s.records += len(records)
        s.events += c.events
        s.alerts += c.alerts
        s.dlq += c.dlq
        s.late += c.late
        s.replayed += c.replayed
        s.last_commit_at = time.monotonic()
        s.latencies_s.extend(committed - np.asarray(result.record_times_ms, dtype=np.float64) / 1000.0)
        if self.metrics is not None:
            self.metrics.observe_committed(result, committed)

    def _pause(self) -> None:
        if not self._paused:
            for consumer in (self.consumer, self.label_consumer):
                consumer.pause(consumer.assignment())
            self._paused = True

    def _resume(self) -> None:
        if self._paused:
            for consumer in (self.consumer, self.label_consumer):
                consumer.resume(consumer.assignment())
            self._paused = False

    def _wait_serving_callbacks(self, seconds: float) -> None:
        """Sleep while still calling consume() (partitions paused) so the group keeps us and callbacks run."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop_event.is_set():
            extra = self._poll(0.1)
            if extra:  # only from partitions assigned after the pause began: keep their order, process together
                self._held.extend(extra)

    def _report_lag(self) -> None:
        if self.metrics is None or time.monotonic() - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = time.monotonic()
        lags = []
        try:
            for consumer in (self.consumer, self.label_consumer):
                for tp in consumer.position(consumer.assignment()):
                    if tp.offset < 0:
                        continue
                    # cached: the high watermark of the last fetch response, no broker round trip on the hot path
                    _low, high = consumer.get_watermark_offsets(tp, cached=True)
                    if high >= 0:
                        lags.append((tp.topic, tp.partition, max(high - tp.offset, 0)))
        except KafkaException as exc:
            log.debug("lag not available: %s", exc)
            return
        self.metrics.set_lag(lags)

    def stop(self) -> None:
        """Ask the loop to stop after the batch in flight (safe from signal handlers and other threads)."""
        self.stop_event.set()

    def close(self) -> None:
        self.committer.close()  # a transaction still in flight (the loop failed) ends before the producer goes
        for consumer in (self.consumer, self.label_consumer):
            try:
                consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.debug("consumer close: %s", exc)
        self.output.close()
        log.info("kafka engine %s stopped", self.instance_id, extra={"stats": _summary(self.stats)})


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def _summary(stats: EngineStats) -> dict[str, Any]:
    return {k: v for k, v in vars(stats).items() if k != "latencies_s"}
