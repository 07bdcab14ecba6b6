"""Publish a canonical frame to Kafka: key = user_id, Transaction JSON, schema headers, idempotent producer.

Labels (source=dataset) can follow to the labels topic `delay` after their transaction, merged in event-time
order. Every delivery is counted; a publish that is not fully acknowledged ends with an InfraError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from bankbus.encode import keys_of, label_values, paused_gc, transaction_values
from bankbus.pacing import Pacer, Pacing
from fraudstream.clock import Clock
from fraudstream.contracts import RECORD_TYPE_HEADER, SCHEMA_VERSION, SCHEMA_VERSION_HEADER
from fraudstream.errors import InfraError, InputError
from fraudstream.kafka_config import producer_config
from fraudstream.settings import Settings

CHUNK = 5_000
TRANSACTION_HEADERS = [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode()), (RECORD_TYPE_HEADER, b"transaction")]
LABEL_HEADERS = [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode()), (RECORD_TYPE_HEADER, b"label")]


@dataclass
class Outbox:
    """Messages ready to send, in send order."""

    topics: list[str]
    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[Any]  # per message: list of (name, bytes) pairs
    event_ns: np.ndarray  # also the Kafka message timestamp (ms = ns // 1e6)
    partitions: np.ndarray | None = None  # None: the partitioner chooses by key

    def __len__(self) -> int:
        return len(self.values)


def outbox_for(
    frame: pd.DataFrame, topic: str, labels_topic: str | None = None, labels_delay: timedelta | None = None
) -> Outbox:
    """Transactions (and, with labels_topic, their labels after labels_delay) in event-time order."""
    with paused_gc():
        return _outbox_for(frame, topic, labels_topic, labels_delay)


def _outbox_for(frame: pd.DataFrame, topic: str, labels_topic: str | None, labels_delay: timedelta | None) -> Outbox:
    event_ns = frame["timestamp"].dt.as_unit("ns").array.asi8
    keys = keys_of(frame["user_id"])
    if labels_topic is None:
        order = np.argsort(event_ns, kind="stable")
        values = transaction_values(frame)
        return Outbox([topic] * len(frame), [keys[i] for i in order.tolist()], [values[i] for i in order.tolist()],
                      [TRANSACTION_HEADERS] * len(frame), event_ns[order])
    if "is_fraud" not in frame.columns:
        raise InputError("--labels-delay needs a file with label columns (is_fraud, fraud_scenario)")
    delay = labels_delay or timedelta(0)
    times = np.concatenate([event_ns, event_ns + int(delay.total_seconds() * 1e9)])
    order = np.argsort(times, kind="stable")  # a transaction goes before a label of the same instant
    n = len(frame)
    values = transaction_values(frame) + label_values(frame, delay)
    topics = [topic, labels_topic]
    headers = [TRANSACTION_HEADERS, LABEL_HEADERS]
    return Outbox(
        [topics[i >= n] for i in order.tolist()], [keys[i % n] for i in order.tolist()],
        [values[i] for i in order.tolist()], [headers[i >= n] for i in order.tolist()], times[order],
    )


@dataclass
class PublishReport:
    sent: int
    delivered: int
    failed: int
    first_error: str | None
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0


class DeliveryCounter:
    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{err.str()} (topic {msg.topic()})"


def send(
    settings: Settings, outbox: Outbox, pacing: Pacing, *, clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep, on_progress: Callable[[int], None] | None = None,
    flush_timeout_s: float = 120.0, stamp_send_time: bool = False, **producer_overrides: Any,
) -> PublishReport:
    """Produce every message, paced; raise InfraError unless every one is acknowledged.

    Each message's Kafka timestamp is its event time (kept for replays by time range), or with stamp_send_time the
    moment it is produced (so a consumer's record-timestamp latency is publish-to-score)."""
    producer = Producer(producer_config(settings, **producer_overrides))
    counter = DeliveryCounter()
    pacer = Pacer(pacing.offsets(outbox.event_ns), clock=clock, sleep=sleep)
    stamps_ms = [0] * len(outbox) if stamp_send_time else (outbox.event_ns // 1_000_000).tolist()  # 0: now
    partitions = outbox.partitions.tolist() if outbox.partitions is not None else None
    began = time.perf_counter()
    sent = 0
    while sent < len(outbox):
        upto = pacer.due(sent, min(sent + CHUNK, len(outbox)))
        for i in range(sent, upto):
            extra = {"partition": partitions[i]} if partitions is not None else {}
            while True:
                try:
                    producer.produce(outbox.topics[i], outbox.values[i], outbox.keys[i], headers=outbox.headers[i],
                                     timestamp=stamps_ms[i], on_delivery=counter, **extra)
                    break
                except BufferError:  # the local queue is full: serve delivery reports, then retry
                    producer.poll(0.05)
                except KafkaException as exc:
                    raise InfraError(f"cannot produce to {outbox.topics[i]}: {exc.args[0]}") from None
        producer.poll(0)
        if on_progress is not None:
            on_progress(upto - sent)
        sent = upto
        if counter.failed:
            break
    remaining = producer.flush(flush_timeout_s)
    report = PublishReport(sent, counter.delivered, counter.failed, counter.first_error, time.perf_counter() - began)
    if report.delivered != len(outbox):
        raise InfraError(
            f"only {report.delivered:,} of {len(outbox):,} messages were acknowledged "
            f"({report.failed:,} failed, {remaining:,} still queued"
            f"{'; first error: ' + report.first_error if report.first_error else ''}); "
            f"check that Kafka at {settings.bootstrap_servers} is up and the topic exists"
        )
    return report
