"""The practical ceiling: raw confluent-kafka consume a batch -> produce it to another topic -> commit, no processing.

Run as its own process by the bench (`python -m bench.passthrough SOURCE DEST GROUP --expect N`); prints one JSON
line. Two modes: `plain` (produce, wait for the acks, commit the offsets: at least once) and `transactional`
(the kafka engine's delivery: outputs and offsets in one Kafka transaction per batch, exactly once).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from fraudstream.kafka_config import consumer_config, producer_config
from fraudstream.settings import Settings, build_settings


def passthrough(
    settings: Settings, source: str, dest: str, group: str, expect: int, *, batch: int, mode: str, idle_s: float = 30.0
) -> dict[str, Any]:
    """Copy `expect` records from source to dest; returns the rate from the first record to the last commit."""
    consumer = Consumer(consumer_config(settings, group))
    extra = {"transactional.id": f"{group}-tx"} if mode == "transactional" else {}
    producer = Producer(producer_config(settings, **extra))
    if mode == "transactional":
        producer.init_transactions(30)
    consumer.subscribe([source])
    copied, batches = 0, 0
    first = last_commit = None
    cpu_first = cpu_last = 0.0
    last_data = time.monotonic()
    try:
        while copied < expect and time.monotonic() - last_data < idle_s:
            messages = [m for m in consumer.consume(batch, timeout=0.05) if m.error() is None or _raise(m)]
            if not messages:
                continue
            last_data = time.monotonic()
            if first is None:
                first, cpu_first = last_data, time.process_time()
            if mode == "transactional":
                producer.begin_transaction()
            offsets: dict[tuple[str, int], int] = {}
            for m in messages:
                _produce(producer, dest, m.key(), m.value(), m.headers())
                offsets[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0) + 1
            positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            if mode == "transactional":
                producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
            else:
                if producer.flush(30) != 0:
                    raise RuntimeError("passthrough: records not acknowledged within 30 s")
                consumer.commit(offsets=positions, asynchronous=False)
            copied += len(messages)
            batches += 1
            last_commit, cpu_last = time.monotonic(), time.process_time()
    finally:
        consumer.close()
    busy = (last_commit - first) if first and last_commit else 0.0
    return {
        "mode": mode,
        "records": copied,
        "batches": batches,
        "busy_s": round(busy, 3),
        "records_per_s": round(copied / busy, 1) if busy > 0 else None,
        "cpu_percent": round(100 * (cpu_last - cpu_first) / busy, 1) if busy > 0 else None,
    }


def _raise(message: Any) -> bool:
    if message.error().code() == KafkaError._PARTITION_EOF:
        return False
    raise RuntimeError(f"passthrough: consume error {message.error().str()}")


def _produce(producer: Producer, topic: str, key: Any, value: Any, headers: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("group")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--mode", choices=("plain", "transactional"), default="plain")
    args = parser.parse_args()
    result = passthrough(
        build_settings(), args.source, args.dest, args.group, args.expect, batch=args.batch, mode=args.mode
    )
    print(json.dumps(result), flush=True)
    if result["records"] < args.expect:
        print(f"passthrough: only {result['records']:,} of {args.expect:,} records arrived within the idle limit; "
              "the rate above is of those", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
