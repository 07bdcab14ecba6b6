"""Quick engine measurement: N simulated transactions through one worker of either engine, summary as JSON.

    FRAUD_EMBEDDED__KAFKA_PORT=29092 FRAUD_EMBEDDED__REDIS_PORT=26379 \
        .venv/bin/python -m bench.engine_run --engine faust --events 100000 [--rate 2000]

Without --rate the whole backlog is published first (sustained throughput); with --rate the worker runs while the
records arrive at that pace (latency below saturation). Own topics, group, namespace and registry per run; uses the
tiny test model (a logistic regression), so scoring cost is not the MLP's. Not the formal benchmark of the bench issue.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fraudstream.contracts import Transaction
from fraudstream.logs import configure_logging
from fraudstream.settings import Settings, build_settings


def transactions(count: int, seed: int) -> list[Transaction]:
    from bankbus.frames import frame_to_transactions
    from bankbus.simulator import SimulationConfig, simulate_frame

    customers = max(count // 50, 10)  # ~2.2 transactions per customer-day
    frame = simulate_frame(SimulationConfig(customers=customers, merchants=max(customers // 4, 10), days=25, seed=seed))
    return list(frame_to_transactions(frame))[:count]


def publish(settings: Settings, txns: list[Transaction], rate: float | None) -> None:
    from confluent_kafka import Producer

    from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER
    from fraudstream.kafka_config import producer_config

    producer = Producer(producer_config(settings))
    headers: list[tuple[str, str | bytes | None]] = [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode())]
    began = time.monotonic()
    for i, txn in enumerate(txns):
        if rate is not None:
            ahead = began + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(
                    settings.topics.transactions, txn.model_dump_json().encode(), txn.user_id.encode(), headers=headers
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0, "not every benchmark record was delivered"


def isolated(base: Settings, registry: Path, engine: str) -> Settings:
    name = f"bench-{engine}-{uuid.uuid4().hex[:8]}"
    topics = {key: f"{name}.{key}" for key in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    return base.with_overrides(
        topics=topics,
        redis={"namespace": name},
        registry={"path": str(registry), "allow_unsigned": True},
        streamer={"consumer_group": name, "transactional_id": name, "scorer": "stack"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("faust", "kafka"), default="faust")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=None, help="records/s while the worker runs")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    base = build_settings()
    configure_logging(base.log_level, base.log_format)

    from fraudstream.infra.topics import ensure_topics
    from models.tiny import publish_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        settings = isolated(base, Path(tmp) / "registry", args.engine)
        ensure_topics(settings)
        publish_tiny_model(settings.registry.path)
        txns = transactions(args.events, args.seed)
        publisher: threading.Thread | None = None
        if args.rate is None:
            publish(settings, txns, None)
        else:
            publisher = threading.Thread(target=publish, args=(settings, txns, args.rate), daemon=True)
            publisher.start()
        summary: dict[str, Any]
        if args.engine == "faust":
            from streamer.faust_engine import run_faust_engine

            summary = run_faust_engine(settings, max_events=len(txns), idle_exit_s=60)
        else:
            from streamer.run import run_kafka_engine

            summary = run_kafka_engine(settings, max_events=len(txns), idle_exit_s=60, serve_metrics=False)
        if publisher is not None:
            publisher.join()
    print(json.dumps({"engine": args.engine, "published": len(txns), "rate": args.rate, **summary}))


if __name__ == "__main__":
    main()
