"""Integration helpers for the streamer: isolated settings, publishing, read_committed reading, engine threads."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from fraudstream.contracts import Transaction
from fraudstream.infra.topics import ensure_topics
from fraudstream.kafka_config import consumer_config, producer_config
from fraudstream.settings import Settings
from tests.streamer_support import txn_headers


def isolated_settings(base: Settings, name: str, registry: Path, partitions: int = 3, **streamer: Any) -> Settings:
    """Own topics, consumer group, transactional id, Redis namespace and registry; topics created."""
    namespace = f"ns{uuid.uuid4().hex[:12]}"
    topics = {k: f"{name}.{k}" for k in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    settings = base.with_overrides(
        topics={**topics, "partitions": partitions},
        streamer={
            "consumer_group": name,
            "transactional_id": name,
            "scorer": "stack",
            "micro_batch_max_wait_ms": 50,
            "reload_poll_s": 0.2,
            "redis_retry_max_s": 2.0,
            **streamer,
        },
        redis={"namespace": namespace},
        registry={"path": str(registry)},
    )
    ensure_topics(settings)
    return settings


def publish(settings: Settings, items: list[Transaction | tuple[Any, ...]], topic: str | None = None) -> None:
    """Transactions (key = user_id) or raw (key, value) pairs or (key, value, headers), acknowledged before
    returning."""
    producer = Producer(producer_config(settings))
    target = topic or settings.topics.transactions
    for item in items:
        if isinstance(item, Transaction):
            args: dict[str, Any] = {"key": item.user_id, "value": item.model_dump_json(), "headers": txn_headers()}
        else:  # (key, value) or (key, value, headers)
            args = {"key": item[0], "value": item[1], **({"headers": list(item[2])} if len(item) > 2 else {})}
        while True:
            try:
                producer.produce(target, **args)
                break
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                producer.poll(0.5)
        producer.poll(0)
    assert producer.flush(60) == 0


def read_all(settings: Settings, topic: str, timeout_s: float = 20.0) -> list[Any]:
    """Every committed record of a topic (read_committed, assign(), no group commits), up to the current end."""
    from fraudstream.infra.topics import partition_count

    n = partition_count(settings, topic)
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
    done: set[int] = set()
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < n and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.add(int(message.partition() or 0))
                    continue
                done.discard(int(message.partition() or 0))
                out.append(message)
    finally:
        consumer.close()
    return out


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class EngineThread:
    """A KafkaEngine running in a thread of the test process (RedisFeatureStore + ModelHolder of the settings)."""

    settings: Settings
    instance_id: str
    engine: Any = None
    runtime: Any = None
    thread: threading.Thread | None = None
    error: list[BaseException] = field(default_factory=list)

    def start(self) -> EngineThread:
        from streamer.kafka_engine import KafkaEngine
        from streamer.runtime import build_runtime

        self.runtime = build_runtime(self.settings)
        self.engine = KafkaEngine(
            self.settings, self.runtime.processor, self.runtime.metrics, instance_id=self.instance_id
        )

        def run() -> None:
            try:
                self.engine.run()
            except BaseException as exc:  # surfaced by stop()
                self.error.append(exc)

        self.thread = threading.Thread(target=run, name=f"engine-{self.instance_id}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.engine.stop()
        assert self.thread is not None
        self.thread.join(timeout=60)
        self.runtime.close()
        assert not self.thread.is_alive(), "engine did not stop"
        if self.error:
            raise self.error[0]
