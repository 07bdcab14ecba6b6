"""`fraudstream dlq tail` and `fraudstream late tail`: the dead-letter and late topics as readable lines, each with
its reason. Like `alerts tail`, they read with assign() and a throwaway group id: no consumer group is joined and
nothing is committed, so reading them never moves anyone's offsets.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from fraudstream.errors import InfraError
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

#: Most characters of an original record shown on a line.
SHOWN_CHARS = 160


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def read_topic(settings: Settings, topic: str, *, follow: bool, from_beginning: bool,
               poll_s: float = 0.5) -> Iterator[TopicRecord]:
    """Records in partition order; without follow, stops once every partition's end is reached."""
    from fraudstream.infra.topics import partition_count

    partitions = partition_count(settings, topic)
    consumer = Consumer(consumer_config(
        settings, f"fraudstream-tail-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "enable.auto.offset.store": False},
    ))
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    at_end: set[int] = set()
    try:
        while follow or len(at_end) < partitions:
            for message in consumer.consume(num_messages=500, timeout=poll_s):
                error = message.error()
                partition = int(message.partition() or 0)
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(partition)
                        continue
                    raise InfraError(f"cannot read {topic}: {error.str()}")
                at_end.discard(partition)
                ts_type, ts = message.timestamp()
                headers = {str(name): raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
                           for name, raw in list(message.headers() or [])}
                key = message.key()
                yield TopicRecord(topic, partition, int(message.offset() or 0), ts if ts_type != 0 else None,
                                  key.encode() if isinstance(key, str) else key, message.value() or b"", headers)
    finally:
        consumer.close()


def _when(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "(no timestamp)"
    return f"{datetime.fromtimestamp(timestamp_ms / 1000, UTC):%Y-%m-%d %H:%M:%S}Z"


def _short(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def format_dead_letter(record: TopicRecord) -> str:
    """When it was dead-lettered, where the record came from, the reason, the message and the original's start."""
    h = record.headers
    source = f"{h.get('error-topic', '?')}[{h.get('error-partition', '?')}]@{h.get('error-offset', '?')}"
    original = ""
    try:
        letter = json.loads(record.value)
        original = base64.b64decode(letter.get("original_b64") or "").decode("utf-8", "replace")
        message = h.get("error-message") or letter.get("error_message", "")
    except (ValueError, TypeError, AttributeError):
        message = h.get("error-message", "")
    key = (record.key or b"").decode("utf-8", "replace")
    return (
        f"{_when(record.timestamp_ms)}  from {source}  key {key or '-'}  "
        f"{h.get('error-reason', 'unknown-reason')} ({h.get('error-class', '?')}): {_short(message)}"
        f"  | {_short(original) or '(empty)'}"
    )


def format_late(record: TopicRecord) -> str:
    """The transaction's event time, user, id and amount, and why it was late."""
    try:
        txn = json.loads(record.value)
        what = (f"event {str(txn.get('timestamp', '?'))[:19].replace('T', ' ')}Z  user {txn.get('user_id', '?')}  "
                f"txn {txn.get('transaction_id', '?')}  {txn.get('amount', '?')} {txn.get('currency', '')}".rstrip())
    except (ValueError, AttributeError):
        what = f"unreadable value {_short(record.value.decode('utf-8', 'replace'))}"
    reason = record.headers.get("late-reason", "no reason header")
    return f"{_when(record.timestamp_ms)}  {record.topic}[{record.partition}]@{record.offset}  {what}  | {reason}"
