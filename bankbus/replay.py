"""Replay a file, or a time range of a topic, into a separate replay topic without touching any consumer group.

The topic range is found with offsets_for_times per partition and read with assign() by a consumer that has a
throwaway group id and never commits. Records keep their key, value, headers, timestamp and partition number.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from bankbus.frames import read_canonical
from bankbus.pacing import Pacing
from bankbus.publisher import Outbox, PublishReport, outbox_for, send
from fraudstream.boundary import KAFKA_HINT
from fraudstream.errors import InfraError, InputError
from fraudstream.infra.topics import ensure_topics, partition_count
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

REPLAY_GROUP_PREFIX = "fraudstream-replay-"


def check_target(settings: Settings, to_topic: str, from_topic: str | None = None) -> None:
    if to_topic in {settings.topics.transactions, from_topic}:
        raise InputError(f"--to-topic {to_topic} is a live or source topic; replay into a separate topic")


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int  # first offset to read
    end: int  # one past the last offset to read


def replay_consumer(settings: Settings) -> Consumer:
    """A consumer that only reads: a throwaway group id, no auto commit, no offset store."""
    return Consumer(consumer_config(
        settings, f"{REPLAY_GROUP_PREFIX}{uuid.uuid4().hex}",
        **{"enable.auto.commit": False, "enable.auto.offset.store": False},
    ))


def find_ranges(
    consumer: Consumer, topic: str, start: datetime, end: datetime, timeout_s: float, *, servers: str = ""
) -> list[PartitionRange]:
    """Per partition: offsets of the first record at or after `start` and of the first at or after `end`."""
    if end <= start:
        raise InputError(f"--end {end.isoformat()} is not after --start {start.isoformat()}")
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise InputError(f"topic {topic} does not exist; nothing to replay")
        partitions = sorted(info.partitions)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        starts = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in partitions], timeout=timeout_s)
        ends = consumer.offsets_for_times([TopicPartition(topic, p, end_ms) for p in partitions], timeout=timeout_s)
        ranges = []
        for first, last in zip(starts, ends, strict=True):
            if first.offset < 0:  # no record at or after start in this partition
                continue
            stop = last.offset
            if stop < 0 or stop == OFFSET_END:  # no record at or after end: read to the high watermark
                stop = consumer.get_watermark_offsets(TopicPartition(topic, first.partition), timeout=timeout_s)[1]
            if stop > first.offset:
                ranges.append(PartitionRange(first.partition, first.offset, stop))
        return ranges
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        raise InfraError(
            f"cannot look up offsets of {topic}{' at ' + servers if servers else ''}: "
            f"{error.str() if isinstance(error, KafkaError) else error}; "
            f"{KAFKA_HINT}"
        ) from None


def read_range(
    settings: Settings, topic: str, start: datetime, end: datetime, to_topic: str, batch: int = 1_000
) -> tuple[Outbox, int]:
    """Every record of `topic` with a timestamp in [start, end), in time order, addressed to `to_topic`;
    and the source's partition count."""
    timeout = settings.kafka.request_timeout_s
    consumer = replay_consumer(settings)
    try:
        ranges = find_ranges(consumer, topic, start, end, timeout, servers=settings.bootstrap_servers)
        partitions_total = len(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        headers: list[Any] = []
        stamps: list[int] = []
        parts: list[int] = []
        open_ends = {r.partition: r.end for r in ranges}
        consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges])
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        last_record = time.monotonic()
        while open_ends:
            messages = consumer.consume(batch, timeout=0.5)
            if messages:
                last_record = time.monotonic()
            elif time.monotonic() - last_record > timeout:
                raise InfraError(f"replay of {topic} stalled: no records for {timeout:.0f} s with partitions "
                                 f"{sorted(open_ends)} not finished")
            for msg in messages:
                error = msg.error()
                if error is not None:
                    raise InfraError(f"cannot read {topic}: {error.str()}")
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                if partition not in open_ends or offset >= open_ends[partition]:
                    continue
                if offset + 1 >= open_ends[partition]:
                    del open_ends[partition]
                stamp = msg.timestamp()[1]
                if start_ms <= stamp < end_ms:
                    keys.append(msg.key())
                    values.append(msg.value())
                    headers.append(list(msg.headers() or []))
                    stamps.append(stamp)
                    parts.append(partition)
            # Transaction markers have offsets but are never delivered: finish by position too.
            for position in consumer.position([TopicPartition(topic, p) for p in open_ends]):
                if position.offset >= open_ends[position.partition]:
                    del open_ends[position.partition]
    finally:
        consumer.close()  # nothing was committed: no group offsets are written
    order = np.argsort(np.array(stamps, dtype=np.int64), kind="stable")
    outbox = Outbox(
        [to_topic] * len(order), [keys[i] for i in order], [values[i] for i in order], [headers[i] for i in order],
        np.array(stamps, dtype=np.int64)[order] * 1_000_000, np.array(parts, dtype=np.int64)[order],
    )
    return outbox, partitions_total


def prepare_replay_topic(settings: Settings, to_topic: str, partitions: int) -> None:
    """Create the replay topic with the source's partition count; refuse one with a different count."""
    ensure_topics(settings, [to_topic], partitions=partitions)
    have = partition_count(settings, to_topic)
    if have != partitions:
        raise InputError(
            f"replay topic {to_topic} has {have} partitions, the source {partitions}; use a new --to-topic"
        )


def replay_topic(
    settings: Settings, from_topic: str, start: datetime, end: datetime, to_topic: str, pacing: Pacing,
    on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
) -> PublishReport:
    """Copy the records of `from_topic` in [start, end) into `to_topic`, same partitions, paced by timestamps."""
    check_target(settings, to_topic, from_topic)
    outbox, partitions = read_range(settings, from_topic, start, end, to_topic)
    if on_total is not None:
        on_total(len(outbox))
    prepare_replay_topic(settings, to_topic, partitions)
    return send(settings, outbox, pacing, on_progress=on_progress)


def replay_file(
    settings: Settings, path: Path, to_topic: str, pacing: Pacing,
    on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
) -> PublishReport:
    """Publish a historical canonical file into a replay topic (default partition count)."""
    check_target(settings, to_topic)
    outbox = outbox_for(read_canonical(path), to_topic)
    if on_total is not None:
        on_total(len(outbox))
    ensure_topics(settings, [to_topic])
    return send(settings, outbox, pacing, on_progress=on_progress)
