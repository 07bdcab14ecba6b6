"""The confluent-kafka engine: consume a batch, run the core, put it in the checkpoint of the commit interval.

Exactly once (the default) for read_committed consumers: one Kafka transaction spans every batch of a commit
interval (streamer/checkpoint.py) with their outputs and consumed offsets; at least once: an idempotent producer,
offsets committed once the outputs are delivered. A crash or an abort anywhere inside an interval replays all its
batches, and the idempotent Redis side returns their cached outputs, so the replay produces identical bytes.
A checkpoint commits on a background thread while the next batch is fetched and processed (its state goes to
Redis); that batch's outputs go out once the commit has ended.
Redis down: what is done commits, the failed batch is held, partitions paused, retried with exponential backoff;
nothing of it is committed meanwhile.
Rebalance: revoked partitions commit the checkpoint first; lost ones abort it (another member may own them now).
Recovery is bounded by FRAUD_STREAMER__RECOVERY_TIMEOUT_S (streamer/recovery.py): a commit that has not returned in
half of it is given up and the producer rebuilt; a member whose partitions wait with no committed progress for half
of it, the broker answering, restarts (new consumers, new producer); close() never hangs or raises.
Labels come through a second consumer (group `<group>.labels`): one group over both topics lets the sticky assignor
give one worker every transactions partition and the other only labels. Labels are applied idempotently per offset
in Redis, and their offsets are committed right after the checkpoint (at least once, replays harmless).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from fraudstream.errors import InfraError, StateStoreError
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings
from state.redis_client import RetryBackoff
from streamer.alignment import EventTimeAligner
from streamer.checkpoint import Checkpoint, Checkpointer, Partition, Status
from streamer.core import BatchResult, RawRecord, StreamProcessor
from streamer.kafka_tx import IdempotentOutput, Output, TransactionalOutput
from streamer.metrics import StreamMetrics
from streamer.progress import ProgressLog
from streamer.recovery import StallWatch, bounded, group_progress
from streamer.stats import EngineStats
from streamer.wire import event_seconds

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
#: A killed worker's partitions move on after this long; librdkafka's 45 s default stalls a restart for that long.
SESSION_TIMEOUT_MS = 10_000


#: Prefetched records librdkafka keeps per consumer (its default, 64 MiB, is what a worker behind a backlog holds in
#: RSS); 16 MiB is still several 2,000-record batches ahead.
PREFETCH_KBYTES = 16_384
#: With --idle-exit, how long a worker waits for its first assignment before idleness counts.
UNASSIGNED_GRACE_S = 60.0
#: The most close() waits for the last commit, then for the producer's flush.
CLOSE_TIMEOUT_S = 10.0
#: Records a partition may have waiting in the event-time aligner (in poll batches) before it is paused.
ALIGNMENT_BATCHES_PER_PARTITION = 4
#: How long asking the committed offset of a partition with no position yet may take (once per assignment).
COMMITTED_TIMEOUT_S = 5.0

def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


def to_raw(message: Message) -> RawRecord:
    """An engine-neutral record (a plain Consumer gives bytes keys, values and header values; no conversion)."""
    ts_type, ts = message.timestamp()
    headers = message.headers()
    return RawRecord(
        message.topic(),  # type: ignore[arg-type]  # set on every consumed message
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        _as_bytes(message.key()),
        _as_bytes(message.value()),
        headers if headers is not None else [],  # type: ignore[arg-type]
        ts if ts_type != 0 else None,
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cfg = settings.streamer
        self.processor = processor
        self.metrics = metrics
        self.instance_id = instance_id or socket.gethostname()
        self.stop_event = threading.Event()
        self.stats = EngineStats()
        self.progress = ProgressLog(metrics)  # a progress line every few seconds, fed per batch
        self._sleep = sleep
        self._held: list[RawRecord] = []
        self._paused = False
        self._assigned: set[tuple[str, int]] = set()
        self._last_activity = time.monotonic()
        self._last_lag = 0.0
        self.last_poll_at: float | None = None  # monotonic time of the last poll: liveness (streamer/health.py)
        self._replacing = False  # the rebalance callbacks of consumers being replaced are ignored
        self.member_restarts = 0
        self.consumer, self.label_consumer = self._new_consumers()
        self.output: Output
        if self.cfg.processing_guarantee == "exactly_once":
            self.output = TransactionalOutput(settings, f"{self.cfg.transactional_id}-{self.instance_id}")
        else:
            self.output = IdempotentOutput(settings)
        interval_s = self.cfg.commit_interval_ms / 1000.0
        recovery_s = self.cfg.recovery_timeout_s
        self.checkpoints = Checkpointer(self.output, self.consumer, settings.topics.transactions, interval_s, clock,
                                        commit_timeout_s=recovery_s / 2)
        self.stall_watch = StallWatch(recovery_s / 2)
        self.aligner: EventTimeAligner[RawRecord] | None = None
        if self.cfg.event_time_alignment:
            f = settings.features
            slack_s = max(f.label_delay_days * 86_400.0 - f.grace_period_s - 1.0, 0.0)
            self.aligner = EventTimeAligner(slack_s, self.cfg.alignment_max_wait_ms / 1000.0)
        self._backpressured: set[int] = set()  # transactions partitions paused while the aligner holds too many
        self._releasable = False  # the last release was cut at the poll size: more may go out without a fetch
        self._start_offsets: dict[int, int] = {}  # transactions partitions with no position yet: where they start

    def _new_consumers(self) -> tuple[Consumer, Consumer]:
        extra = {"client.id": self.client_id, "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000,
                 "queued.max.messages.kbytes": PREFETCH_KBYTES, "fetch.min.bytes": self.cfg.fetch_min_bytes,
                 "fetch.wait.max.ms": self.cfg.fetch_max_wait_ms}
        group = self.cfg.consumer_group
        return (Consumer(consumer_config(self.settings, group, **extra)),
                Consumer(consumer_config(self.settings, f"{group}.labels", **extra)))

    def assigned_transactions_partitions(self) -> int:
        """How many transactions partitions this worker holds now (readiness; safe from another thread)."""
        txn_topic = self.settings.topics.transactions
        return sum(1 for topic, _ in frozenset(self._assigned) if topic == txn_topic)

    @property
    def client_id(self) -> str:
        return f"{self.settings.kafka.client_id}-{self.instance_id}"

    # ------------------------------------------------------------------ rebalance callbacks (inside consume())
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._start_offsets.clear()
        self._last_activity = time.monotonic()  # joining the group (slow under load) is not idleness
        if self._paused and partitions:
            consumer.pause(partitions)
        log.info("assigned %s", _names(partitions), extra={"event": "assign", "instance": self.instance_id})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._replacing:
            return
        self._give_up(partitions, commit=True)
        log.info("revoked %s", _names(partitions), extra={"event": "revoke", "instance": self.instance_id})

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._replacing:
            return
        log.warning("lost %s", _names(partitions), extra={"event": "lost", "instance": self.instance_id})
        self._give_up(partitions, commit=False)

    def _give_up(self, partitions: list[TopicPartition], *, commit: bool) -> None:
        """The checkpoint ends before the partitions go: committed when they are revoked, aborted when they are
        lost (another member may own them already); an aborted one rewinds only the partitions kept. A batch held
        during a Redis outage loses the records of the partitions gone (the new owner reads them from the committed
        offsets)."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        self._start_offsets.clear()
        ended = self._commit_open(after=self._held) if commit else self._abort_open(after=self._held)
        if not ended:
            self._held = []  # rewound with the aborted checkpoint: it comes again from the consumer
        self._held = [r for r in self._held if (r.topic, r.partition) not in gone]
        if self.aligner is not None:
            txn_topic = self.settings.topics.transactions
            self.aligner.drop(p for t, p in gone if t == txn_topic)
            self._backpressured -= {p for t, p in gone if t == txn_topic}

    # ------------------------------------------------------------------ main loop
    def run(self, *, max_events: int | None = None, idle_exit_s: float | None = None) -> EngineStats:
        topics = self._subscribe()
        log.info("kafka engine %s consuming %s as group %s", self.instance_id, topics, self.cfg.consumer_group)
        self._last_activity = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self.checkpoints.committing_done():
                    self._settle()
                if self.checkpoints.due():
                    self.checkpoints.start_commit()
                if self.stall_watch.due():
                    self._check_stall()
                if max_events is not None and self.stats.records >= max_events:
                    break
                records = self._poll(self._wait_s())
                if not records:
                    waiting = self.aligner is not None and len(self.aligner) > 0
                    if idle_exit_s is not None and not waiting and self._idle_for(idle_exit_s):
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
            self._commit_open()
        finally:
            self.close()
        return self.stats

    def _subscribe(self) -> list[str]:
        topics = [self.settings.topics.transactions, self.settings.topics.labels]
        callbacks = {"on_assign": self._on_assign, "on_revoke": self._on_revoke, "on_lost": self._on_lost}
        self.consumer.subscribe(topics[:1], **callbacks)
        self.label_consumer.subscribe(topics[1:], **callbacks)
        return topics

    # ------------------------------------------------------------------ bounded recovery (streamer/recovery.py)
    def _check_stall(self) -> None:
        """Restart the member if a partition it owns (or any, when it owns none) waits with no committed progress
        for half the recovery timeout while the broker answers."""
        topic = self.settings.topics.transactions
        try:
            committed, ends = group_progress(self.consumer, topic)
        except KafkaException as exc:
            log.debug("group progress not available (%s); the broker is not back", exc)
            self.stall_watch.skip()
            return
        stuck = set(self.stall_watch.observe(committed, ends))
        mine = {p for t, p in self._assigned if t == topic}
        if stuck and (not mine or stuck & mine):
            self._restart_member(stuck, self.stall_watch.stalled_for())

    def _restart_member(self, stuck: set[int], stalled_s: float) -> None:
        """Leave the group and join again with new consumers and a new producer (the old one is fenced); the open
        checkpoint is aborted, so its batches replay from the committed offsets."""
        self.member_restarts += 1
        log.warning("partitions %s of %s wait with no progress for %.0f s while the broker answers; restarting this "
                    "member (restart %d)", sorted(stuck), self.settings.topics.transactions, stalled_s,
                    self.member_restarts, extra={"event": "member_restart", "instance": self.instance_id})
        self.stats.kafka_retries += 1
        self._give_up([TopicPartition(t, p) for t, p in self._assigned], commit=False)
        self._held = []
        if self.aligner is not None:
            self.aligner.clear()  # the new consumers start from the committed offsets
        self._backpressured.clear()
        self._replacing = True
        try:
            for consumer in (self.consumer, self.label_consumer):
                bounded(consumer.close, self.cfg.recovery_timeout_s / 4, "consumer close")
        finally:
            self._replacing = False
        self._assigned, self._paused = set(), False
        try:
            self.output.reset()
        except InfraError as exc:  # the broker went again: the next check retries
            log.warning("producer not rebuilt (%s); retrying at the next check", exc)
        self.consumer, self.label_consumer = self._new_consumers()
        self.checkpoints.consumer = self.consumer
        self._subscribe()
        self.stall_watch.reset()
        self._last_activity = time.monotonic()

    def _wait_s(self) -> float:
        """How long a poll may block for the first record: never past the open checkpoint's commit time."""
        remaining = self.checkpoints.remaining_s()
        return self.cfg.poll_timeout_s if remaining is None else min(self.cfg.poll_timeout_s, remaining)

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
        self.last_poll_at = time.monotonic()
        size, linger_s = self.cfg.poll_batch_size, self.cfg.micro_batch_max_wait_ms / 1000.0
        messages = self.consumer.consume(num_messages=size, timeout=0)
        if not messages:  # no wait while the aligner holds records it may release now
            messages = self.consumer.consume(num_messages=1, timeout=0 if self._releasable else idle_wait_s)
        if messages and len(messages) < size:
            messages += self.consumer.consume(num_messages=size - len(messages), timeout=linger_s)
        records = self._records(messages)
        if self.aligner is not None:
            records = self._aligned(records)
        labels = self.label_consumer.consume(num_messages=size, timeout=0 if records else 0.01)
        return records + self._records(labels)

    def _aligned(self, records: list[RawRecord]) -> list[RawRecord]:
        """The fetched transactions through the event-time aligner (streamer/alignment.py): what may be processed
        now. Partitions with too many records waiting are paused until they drain."""
        aligner = self.aligner
        assert aligner is not None
        if records:
            parts = np.fromiter((r.partition for r in records), np.int64, len(records))
            times = event_seconds([r.value for r in records])
            for p in np.unique(parts).tolist():
                at = np.flatnonzero(parts == p)
                aligner.add(p, times[at], [records[i] for i in at.tolist()])
        if not len(aligner) and not self._backpressured:
            return []
        topic = self.settings.topics.transactions
        mine = {p for t, p in self._assigned if t == topic}
        size = self.cfg.poll_batch_size
        released = aligner.release(self._caught_up(topic, mine), time.monotonic(), mine, size) if len(aligner) else []
        self._releasable = len(released) == size and len(aligner) > 0
        cap = ALIGNMENT_BATCHES_PER_PARTITION * self.cfg.poll_batch_size
        full = {p for p in mine if aligner.waiting(p) > cap}
        drained = {p for p in self._backpressured if aligner.waiting(p) <= cap // 2}
        if full:
            self.consumer.pause([TopicPartition(topic, p) for p in sorted(full)])
        if drained and not self._paused:
            self.consumer.resume([TopicPartition(topic, p) for p in sorted(drained & mine)])
        self._backpressured = (self._backpressured | full) - drained
        return released

    def _caught_up(self, topic: str, partitions: set[int]) -> set[int]:
        """Partitions whose position is their end offset (cached high watermark: no broker round trip). A partition
        that has delivered nothing since it was assigned has no position yet: its start (the committed offset, or
        the low watermark when none is committed) stands in, so one that was assigned already drained is caught up
        at once instead of holding the others back for the aligner's max wait."""
        caught: set[int] = set()
        try:
            for tp in self.consumer.position([TopicPartition(topic, p) for p in sorted(partitions)]):
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                offset = tp.offset if tp.offset >= 0 else self._start_offset(tp, low)
                if 0 <= high <= offset:
                    caught.add(tp.partition)
        except KafkaException as exc:  # none counts as caught up: the aligner waits (at most its max wait)
            log.debug("positions not available: %s", exc)
        return caught

    def _start_offset(self, tp: TopicPartition, low: int) -> int:
        """Where an assigned partition with no position starts: its committed offset, asked once per assignment (one
        round trip), else `low` (auto.offset.reset=earliest); -1 while neither is known."""
        if tp.partition not in self._start_offsets:
            committed = self.consumer.committed([TopicPartition(tp.topic, tp.partition)], timeout=COMMITTED_TIMEOUT_S)
            if committed[0].offset < 0 and low < 0:
                return -1
            self._start_offsets[tp.partition] = committed[0].offset if committed[0].offset >= 0 else low
        return self._start_offsets[tp.partition]

    def _records(self, messages: list[Message]) -> list[RawRecord]:
        if not any(m.error() for m in messages):  # the usual batch
            return [to_raw(m) for m in messages]
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
        """Process one batch into the checkpoint; on a Redis failure commit what is done, hold the batch (partitions
        paused) and retry with backoff."""
        self._held = records
        backoff = RetryBackoff(self.cfg.redis_retry_max_s)
        while self._held:
            self.processor.store.keep_outputs_from(self.checkpoints.unsettled_from())
            try:
                result = self.processor.process(self._held)
            except StateStoreError as exc:
                if not self._commit_open(after=self._held):
                    self._held = []  # rewound with the aborted checkpoint
                self._pause()
                self.stats.redis_retries += 1
                if self.metrics is not None:
                    self.metrics.redis_retries.inc()
                delay = backoff.next_s()
                log.warning("state store unavailable (%s); retrying in %.1f s, nothing committed", exc, delay)
                self._wait_serving_callbacks(delay)
                if self.stop_event.is_set():
                    log.warning("stopping during a state store outage; the held batch stays uncommitted")
                    self._held = []
                continue
            batch, self._held = self._held, []
            # the committing checkpoint ends before this batch's outputs go out; if it aborted, both were rewound
            # and come again, replayed from Redis
            if self._settle(after=batch):
                checkpoint = self.checkpoints.add(batch, result)
                if checkpoint.status is Status.ABORTED:
                    self._aborted(checkpoint)
        self._resume()
        if backoff.failures:
            self.stall_watch.reset()  # held on purpose through the outage: not a stall

    def _settle(self, after: list[RawRecord] | None = None) -> bool:
        """Wait for the committing checkpoint. True if it committed (or none was committing); False if it aborted:
        the consumer is rewound to its start, and to the start of `after` (records fetched since)."""
        checkpoint = self.checkpoints.settle()
        if checkpoint is None:
            return True
        if checkpoint.status is Status.ABORTED:
            self._aborted(checkpoint, after)
            return False
        self._committed(checkpoint)
        return True

    def _commit_open(self, after: list[RawRecord] | None = None) -> bool:
        """Settle the committing checkpoint, then commit the open one and wait (a revoke, a stop, a Redis outage).
        False if either aborted (rewound with `after`)."""
        if not self._settle(after):
            return False
        self.checkpoints.start_commit()
        return self._settle(after)

    def _abort_open(self, after: list[RawRecord] | None = None) -> bool:
        """Settle the committing checkpoint, then abort the open one. False if anything was rewound."""
        if not self._settle(after):
            return False
        checkpoint = self.checkpoints.abort()
        if checkpoint is not None:
            self._aborted(checkpoint, after)
        return checkpoint is None

    def _aborted(self, checkpoint: Checkpoint, after: list[RawRecord] | None = None) -> None:
        self.stats.kafka_retries += 1
        log.warning("checkpoint aborted (%s); rewinding to its start", checkpoint.error or "partitions lost")
        first = dict(checkpoint.first_offsets)
        waiting = list(self.aligner.first_records().values()) if self.aligner is not None else []
        for r in [*(after or []), *waiting]:
            first[(r.topic, r.partition)] = min(first.get((r.topic, r.partition), r.offset), r.offset)
        if self.aligner is not None:
            self.aligner.clear()  # fetched again from where the rewind goes
        self._rewind(first)

    def _committed(self, checkpoint: Checkpoint) -> None:
        """Step 4: the labels' offsets (at least once: applied idempotently in Redis), then the counts."""
        txn_topic = self.settings.topics.transactions
        labels = [TopicPartition(t, p, off) for (t, p), off in checkpoint.next_offsets.items() if t != txn_topic]
        if labels:
            try:
                self.label_consumer.commit(offsets=labels, asynchronous=True)  # never blocks the loop
            except KafkaException as exc:  # a replay of these labels changes nothing
                log.warning("label offsets not committed (%s); they will be re-read and ignored", exc.args[0])
        self.stats.transactions += 1
        assert checkpoint.committed_at is not None
        for records, result in checkpoint.batches:
            self._account(records, result, checkpoint.committed_at)

    def _rewind(self, first: dict[Partition, int]) -> None:
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
        self.progress.observe(result, committed, len(records))
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
            if self._backpressured:  # still too many waiting in the aligner
                topic = self.settings.topics.transactions
                self.consumer.pause([TopicPartition(topic, p) for p in sorted(self._backpressured)])

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
        """Bounded: a commit still running (the loop failed) gets CLOSE_TIMEOUT_S, an open checkpoint is aborted,
        each consumer's close and the producer's abort and flush get CLOSE_TIMEOUT_S each, on a thread of their own
        (a call stuck in librdkafka is left behind); errors are logged, never raised."""
        timeout_s = min(CLOSE_TIMEOUT_S, self.cfg.recovery_timeout_s)
        bounded(lambda: self.checkpoints.close(timeout_s), timeout_s + 1.0, "last commit")
        for consumer in (self.consumer, self.label_consumer):
            bounded(consumer.close, timeout_s, "consumer close")
        bounded(lambda: self.output.close(timeout_s), timeout_s + 1.0, "producer close")
        log.info("kafka engine %s stopped", self.instance_id, extra={"stats": _summary(self.stats)})


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def _summary(stats: EngineStats) -> dict[str, Any]:
    return {k: v for k, v in vars(stats).items() if k != "latencies_s"}
