"""Helpers for the fault tests: a reference run, kafka-engine workers with a record limit, own brokers and Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from fraudstream.contracts import Transaction
from fraudstream.settings import Settings
from tests.integration.test_streamer_crash import _finish, _outputs
from tests.streamer_kafka_support import isolated_settings, publish, read_all
from tests.streamer_process import REPO, env_for
from tests.streamer_support import simulated_transactions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traffic(customers: int, seed: int = 31) -> list[Transaction]:
    """Six days of simulated traffic (under the label delay), every 97th amount large enough to alert."""
    base = simulated_transactions(customers=customers, merchants=300, days=6, seed=seed)
    return [t.model_copy(update={"amount": 3000.0}) if i % 97 == 5 else t for i, t in enumerate(base)]


def start_kafka_worker(
    settings: Settings, instance_id: str, *, idle_exit_s: float, max_events: int | None = None
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--idle-exit", str(idle_exit_s),
               "--instance-id", instance_id, "--from", "earliest"]
    if max_events is not None:
        command += ["--max-events", str(max_events)]
    return subprocess.Popen(command, cwd=REPO, env=env_for(settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def reference_run(stack: Settings, name: str, registry: Path, txns: list[Transaction]) -> Settings:
    """The same input through one uninterrupted worker on the test stack."""
    reference = isolated_settings(stack, f"{name}-ref", registry)
    publish(reference, txns)
    summary = _finish(start_kafka_worker(reference, "ref", idle_exit_s=4.0), timeout_s=900)
    assert summary["events"] == len(txns)
    return reference


def assert_same_outputs(got: Settings, expected: Settings, count: int) -> dict[str, int]:
    """Scores and alerts equal the reference's (ids and bytes, produced_at aside), none missing, none doubled."""
    sizes = {}
    for topic in ("scores", "alerts"):
        want = _outputs(expected, getattr(expected.topics, topic))
        have = _outputs(got, getattr(got.topics, topic))  # fails on a duplicate
        assert have.keys() == want.keys(), f"{topic}: {len(have)} outputs vs {len(want)} in the reference"
        differing = [k for k in want if have[k] != want[k]]
        assert not differing, f"{topic}: {len(differing)} outputs differ from the reference, e.g. {differing[0]}"
        sizes[topic] = len(have)
    assert sizes["scores"] == count
    return sizes


def group_committed(settings: Settings) -> int:
    """Transactions offsets the worker group has committed, summed over partitions (one request)."""
    from confluent_kafka import Consumer, TopicPartition

    from fraudstream.kafka_config import consumer_config

    consumer = Consumer(consumer_config(settings, settings.streamer.consumer_group))
    try:
        parts = [TopicPartition(settings.topics.transactions, p) for p in range(settings.topics.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def committed_count(settings: Settings, topic: str) -> int:
    return len(read_all(settings, topic, timeout_s=60))


def own_broker_settings(stack: Settings, folder: Path) -> Settings:
    """A broker of the test's own (state folder, ports), reusing the test stack's resolved jars; Redis unchanged."""
    from fraudstream.infra import kafka_embedded

    own = stack.with_overrides(
        kafka={"bootstrap_servers": None},
        redis={"url": stack.redis_url},
        embedded={"state_dir": str(folder), "kafka_port": free_port(), "controller_port": free_port(),
                  "redis_port": free_port(), "kafka_heap_mb": 512},
    )
    stack_libs = kafka_embedded.paths(stack).libs
    own_paths = kafka_embedded.paths(own)
    own_paths.root.mkdir(parents=True, exist_ok=True)
    if stack_libs.exists() and not own_paths.libs.exists():
        own_paths.libs.symlink_to(stack_libs, target_is_directory=True)
    return own
