"""Measure the kafka engine: N simulated events published, one `fraudstream stream` subprocess, its summary line.

Throughput (a 100k backlog): .venv/bin/python -m tests.streamer_measure --customers 3500 --days 14
Latency (paced input):       .venv/bin/python -m tests.streamer_measure --customers 700 --days 14 --rate 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from fraudstream.contracts import Transaction
from fraudstream.settings import Settings
from tests.conftest import make_test_settings
from tests.streamer_kafka_support import isolated_settings, publish
from tests.streamer_process import start_worker
from tests.streamer_support import publish_tiny_model, simulated_transactions


def paced_publish(settings: Settings, txns: list[Transaction], rate: float) -> None:
    from confluent_kafka import Producer

    from fraudstream.kafka_config import producer_config
    from tests.streamer_support import txn_headers

    producer = Producer(producer_config(settings, **{"linger.ms": 1}))
    start = time.monotonic()
    for i, txn in enumerate(txns):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(
            settings.topics.transactions, key=txn.user_id, value=txn.model_dump_json(), headers=txn_headers()
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    print(f"published {len(txns)} events at {len(txns) / (time.monotonic() - start):.0f}/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=3500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--poll-batch-size", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.0, help="Publish at this many events/s while the worker runs.")
    args = parser.parse_args()
    from fraudstream.infra.stack import up

    base = make_test_settings()
    up(base, create_topics=False)
    txns = simulated_transactions(customers=args.customers, merchants=1000, days=args.days, seed=11)
    registry = Path(tempfile.mkdtemp(prefix="registry-"))
    publish_tiny_model(registry)
    name = f"measure-{uuid.uuid4().hex[:8]}"
    settings = isolated_settings(base, name, registry, partitions=args.partitions, poll_batch_size=args.poll_batch_size)
    if args.rate > 0:  # latency mode: the worker is up first, events arrive at a steady rate
        worker = start_worker(settings, "measure", idle_exit_s=25.0)
        time.sleep(12)
        paced_publish(settings, txns, args.rate)
    else:  # throughput mode: a backlog drained as fast as possible
        t0 = time.monotonic()
        publish(settings, list(txns))
        print(f"published {len(txns)} events in {time.monotonic() - t0:.1f} s", flush=True)
        worker = start_worker(settings, "measure", idle_exit_s=3.0)
    out, err = worker.communicate(timeout=1800)
    if worker.returncode != 0:
        raise SystemExit(f"worker failed ({worker.returncode}): {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"events_published": len(txns), "partitions": args.partitions, **summary}))


if __name__ == "__main__":
    main()
