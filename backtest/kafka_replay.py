"""Kafka mode: the events go through the run's own topics and the real KafkaEngine (own group, own transactional id).

Kafka orders records per partition only, so the driver feeds the stream in time slices no longer than the label
delay (at most a day): a slice's labels are produced and consumed first, then its transactions. A label applied a
little early changes nothing (merchant risk counts a fraud only once its labelled_at has passed), and a slice can
never hold a transaction that a later-read one of the same slice should have counted (merchant windows end a delay
before the event). So the engine computes what the fast driver computes, whatever order it reads partitions in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from backtest.events import LABEL, EventStream
from backtest.replay import Advance, ModelOf, ReplayStats, ScoreSink, Segment, SwitchableModels
from fraudstream.errors import InfraError
from fraudstream.settings import Settings
from streamer.core import RawRecord, StreamProcessor

DAY_NS = 86_400 * 10**9


def _slices(stream: EventStream, seg: Segment, slice_ns: int) -> Iterator[tuple[int, int]]:
    lo = seg.lo
    while lo < seg.hi:
        hi = min(int(stream.times.searchsorted(stream.times[lo] + slice_ns, side="left")), seg.hi)
        yield lo, max(hi, lo + 1)
        lo = max(hi, lo + 1)


class _EngineThread:
    def __init__(self, settings: Settings, processor: StreamProcessor) -> None:
        from streamer.kafka_engine import KafkaEngine

        self.engine = KafkaEngine(settings, processor, None, instance_id="bt")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="backtest-engine", daemon=True)

    def _run(self) -> None:
        try:
            self.engine.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the driver thread, which raises it
            self.error = exc

    def wait_for(self, records: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.engine.stats.records < records:
            if self.error is not None:
                raise self.error
            if not self.thread.is_alive():
                raise InfraError("the backtest's Kafka engine stopped before consuming the replay")
            if time.monotonic() > deadline:
                raise InfraError(
                    f"the Kafka engine consumed {self.engine.stats.records} of {records} records in {timeout_s:.0f} s; "
                    "check the broker and the run's topics"
                )
            time.sleep(0.01)


def _produce(producer: object, records: list[RawRecord]) -> None:
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for r in records:
        while True:
            try:
                producer.produce(  # type: ignore[attr-defined]
                    r.topic,
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp=r.timestamp_ms or 0,
                    headers=r.headers,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.05)  # type: ignore[attr-defined]
    if producer.flush(60.0) or failures:  # type: ignore[attr-defined]
        raise InfraError(f"replay records not delivered to Kafka: {failures[0] if failures else 'flush timed out'}")


def replay_kafka(
    stream: EventStream,
    settings: Settings,
    processor: StreamProcessor,
    switch: SwitchableModels,
    plan: list[Segment],
    sink: ScoreSink,
    model_of: ModelOf,
    *,
    label_delay_ns: int,
    advance: Advance | None = None,
    timeout_s: float = 300.0,
) -> ReplayStats:
    """Produce the stream slice by slice to the run's topics, let the engine process it, then read `scores` back."""
    from confluent_kafka import Producer

    from fraudstream.infra.topics import ensure_topics
    from fraudstream.kafka_config import producer_config

    ensure_topics(settings, settings.topics.all_topics(), settings.topics.partitions)
    slice_ns = max(min(DAY_NS, label_delay_ns), 3600 * 10**9)
    stats = ReplayStats("kafka")
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    runner = _EngineThread(settings, processor)
    began = time.perf_counter()
    runner.thread.start()
    produced = 0
    try:
        for seg in plan:
            runner.wait_for(produced, timeout_s)  # the engine is idle: safe to switch the model
            switch.use(stats.model(model_of, seg.fold))
            for lo, hi in _slices(stream, seg, slice_ns):
                records = stream.records(lo, hi)
                labels = [r for r, k in zip(records, stream.kinds[lo:hi], strict=True) if k == LABEL]
                txns = [r for r, k in zip(records, stream.kinds[lo:hi], strict=True) if k != LABEL]
                for part in (labels, txns):
                    if part:
                        _produce(producer, part)
                        produced += len(part)
                        runner.wait_for(produced, timeout_s)
                if advance is not None:
                    advance(hi - lo)
        runner.wait_for(produced, timeout_s)
    finally:
        runner.engine.stop()
        runner.thread.join(timeout=60)
    stats.seconds = time.perf_counter() - began
    engine_stats = runner.engine.stats
    stats.events = produced
    stats.transactions, stats.dlq, stats.late = engine_stats.events, engine_stats.dlq, engine_stats.late
    stats.replayed, stats.alerts = engine_stats.replayed, engine_stats.alerts
    stats.labels = produced - engine_stats.events - engine_stats.dlq
    stats.extra["batches"] = engine_stats.batches
    sink.add_values(list(read_topic(settings, settings.topics.scores)))
    return stats


def read_topic(settings: Settings, topic: str, idle_s: float = 10.0) -> Iterator[bytes]:
    """Every committed value of a topic from the beginning to its current end (assign(), never a group commit)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from fraudstream.infra.topics import partition_count
    from fraudstream.kafka_config import consumer_config

    n = partition_count(settings, topic)
    consumer = Consumer(consumer_config(settings, f"{settings.streamer.consumer_group}.reader"))
    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)]
        high = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1] for p in range(n)}
        consumer.assign(parts)
        done = {p for p, h in high.items() if h == 0}
        last = time.monotonic()
        while len(done) < n and time.monotonic() - last < idle_s:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is not None:
                    continue
                last = time.monotonic()
                value = message.value()
                if value is not None:
                    yield value
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                if offset + 1 >= high[partition]:
                    done.add(partition)
            for tp in consumer.position([TopicPartition(topic, p) for p in range(n) if p not in done]):
                if tp.offset >= high[tp.partition]:
                    done.add(tp.partition)
    finally:
        consumer.close()
