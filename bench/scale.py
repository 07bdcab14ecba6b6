"""Scale-out curve: events/s of 1, 2, 4 ... kafka-engine workers in one group on a 3-broker KRaft cluster
(replication 3, min.insync.replicas 2) with a Redis Cluster of 3 masters (+ a replica each).

    .venv/bin/python -m bench.scale --workers 1,2,4 --events 40000 \
        [--kafka-ports 49192,49193,49194 --controller-ports 49195,49196,49197 --redis-ports 49301,...,49306]

The clusters are started from the embedded broker's jars (fraudstream/infra/cluster.py) in a temporary folder and
stopped at the end; ports default to free ones. For each worker count: fresh topics of --partitions partitions, the
workers start on the empty topics, and once every one answers /ready (partitions assigned) the whole backlog is
published at once; events/s = events / (last score committed - first score committed), counted on the scores
topic with read_committed. Each worker is a `fraudstream stream` subprocess (exactly once, the tiny model: scoring
cost is not the MLP's). Prints one JSON line per count and a table; --out writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudstream.settings import Settings, build_settings

REPO = Path(__file__).resolve().parents[1]


def _ports(text: str | None, count: int) -> tuple[int, ...]:
    from bench.streams import free_port

    if text:
        ports = tuple(int(p) for p in text.split(","))
        if len(ports) != count:
            raise SystemExit(f"bench.scale: give {count} ports, got {len(ports)}")
        return ports
    return tuple(free_port() for _ in range(count))


def _count_scores(
    settings: Settings, expected: int, timeout_s: float, alive: Callable[[], bool]
) -> tuple[int, float | None, float | None]:
    """Read the scores topic (read_committed) until `expected` records: (count, first and last commit, s)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from fraudstream.infra.topics import partition_count
    from fraudstream.kafka_config import consumer_config

    topic = settings.topics.scores
    consumer = Consumer(consumer_config(settings, f"bench-scale-{uuid.uuid4().hex[:6]}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partition_count(settings, topic))])
    seen, first, last = 0, None, None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            messages = consumer.consume(2000, timeout=0.5)
            if not messages and not alive():
                break  # every worker has exited: nothing more will come
            for message in messages:
                if message.error() is not None:
                    continue
                seen += 1
                now = time.monotonic()
                first = now if first is None else first
                last = now
    finally:
        consumer.close()
    return seen, first, last


def _ready(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_ready(ports: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(_ready(p) for p in ports):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.scale: workers not all ready after {timeout_s:.0f} s (more than partitions?)")
        time.sleep(0.5)
    time.sleep(2)  # a last rebalance triggered by the last joiner settles


def run_count(base: Settings, workers: int, events: int, partitions: int, registry: Path, seed: int) -> dict[str, Any]:
    from bench.engine_run import publish, transactions
    from bench.streams import free_port
    from fraudstream.infra.topics import ensure_topics
    from fraudstream.settings_env import settings_env

    name = f"scale-{workers}w-{uuid.uuid4().hex[:6]}"
    topics = {key: f"{name}.{key}" for key in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    settings = base.with_overrides(
        topics={**topics, "partitions": partitions, "replication_factor": 3},
        redis={"namespace": name},
        registry={"path": str(registry), "allow_unsigned": True},
        streamer={"consumer_group": name, "transactional_id": name, "scorer": "stack"},
    )
    ensure_topics(settings)
    txns = transactions(events, seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(settings_env(settings))
    env.update({"FRAUD_LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "3"})
    logs = [registry.parent / f"{name}-{i}.log" for i in range(workers)]
    ports = [free_port() for _ in range(workers)]
    procs = []
    for i, (log_path, port) in enumerate(zip(logs, ports, strict=True)):
        with log_path.open("w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--idle-exit", "15",
                 "--instance-id", f"{name}-{i}", "--from", "earliest"], cwd=REPO,
                env={**env, "FRAUD_STREAMER__METRICS_PORT": str(port)}, stdout=subprocess.PIPE, stderr=log, text=True))
    # the group settles first (every worker /ready: partitions assigned, Redis, Kafka, model), then the backlog is
    # published at once: the rate measured is the workers', not the group's formation
    _wait_ready(ports, timeout_s=180)
    started = time.monotonic()
    publish(settings, txns, None)
    seen, first, last = _count_scores(settings, len(txns), timeout_s=900, alive=lambda: any(
        p.poll() is None for p in procs))
    summaries = []
    for proc, log_path in zip(procs, logs, strict=True):
        out, _ = proc.communicate(timeout=300)
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"bench.scale: a worker exited {proc.returncode}: {log_path.read_text()[-1500:]}")
        summaries.append(json.loads(lines[-1]))
    span = (last - first) if first is not None and last is not None else None
    return {
        "workers": workers, "partitions": partitions, "events": len(txns), "scored": seen,
        "events_per_s": round(len(txns) / span, 1) if span else None,
        "first_score_after_s": round(first - started, 1) if first is not None else None,
        "records_per_worker": [s.get("records") for s in summaries],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,4", help="Worker counts, comma separated.")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--kafka-ports")
    parser.add_argument("--controller-ports")
    parser.add_argument("--redis-ports")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]

    from fraudstream.infra import kafka_embedded
    from fraudstream.infra.cluster import KafkaCluster, RedisClusterNodes
    from models.tiny import publish_tiny_model

    stack = build_settings()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        kafka = KafkaCluster(root, _ports(args.kafka_ports, 3), _ports(args.controller_ports, 3),
                             libs=kafka_embedded.paths(stack).libs)
        redis = RedisClusterNodes(root, _ports(args.redis_ports, 6))
        publish_tiny_model(root / "registry")
        rows = []
        try:
            redis.start()
            kafka.start()
            base = stack.with_overrides(kafka={"bootstrap_servers": kafka.bootstrap_servers},
                                        redis={"url": redis.url, "cluster": True})
            for workers in counts:
                row = run_count(base, workers, args.events, args.partitions, root / "registry", args.seed)
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            kafka.stop()
            redis.stop()
    print(f"\n| workers | events/s | events | partitions | records per worker | (cpus: {os.cpu_count()}) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = (r["workers"], r["events_per_s"], r["events"], r["partitions"], r["records_per_worker"], "")
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.out is not None:
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
