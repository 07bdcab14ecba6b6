"""Helpers for the faust engine's integration tests: isolated settings, worker subprocesses, topic I/O, web GETs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudstream.contracts import Transaction
from fraudstream.settings import Settings
from fraudstream.settings_env import settings_env
from tests.streamer_support import txn_headers

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_settings(stack: Settings, name: str, registry: Path, **streamer: Any) -> Settings:
    """Own topics, consumer group, Redis namespace, registry and web port for one test."""
    topics = {key: f"{name}.{key}" for key in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    return stack.with_overrides(
        topics={**topics, "partitions": 4},
        redis={"namespace": f"f{uuid.uuid4().hex[:12]}"},
        registry={"path": str(registry)},
        streamer={
            "consumer_group": name,
            "scorer": "stack",
            "web_port": free_port(),
            "poll_timeout_s": 0.1,
            "reload_poll_s": 0.5,
            "redis_retry_max_s": 2.0,
            **streamer,
        },
    )


@dataclass
class Worker:
    """A `fraudstream stream --engine faust` subprocess with its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"worker did not stop within {timeout} s after SIGTERM:\n{self.log()[-4000:]}"
            ) from None


def start_worker(settings: Settings, log_path: Path, *args: str) -> Worker:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(settings_env(settings))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [sys.executable, "-m", "fraudstream", "stream", "--engine", "faust", "--from", "earliest", *args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return Worker(process, log_path, settings.streamer.web_port)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_for(check: Callable[[], Any], timeout: float, what: str, worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}) while waiting for {what}:\n{worker.log()[-4000:]}"
            )
        time.sleep(0.25)
    tail = worker.log()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def health(worker: Worker) -> dict[str, Any] | None:
    code, body = http_get(worker.url("/health"))
    return json.loads(body) if code == 200 else None


def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None, list[Any]]]) -> int:
    from confluent_kafka import Producer

    from fraudstream.kafka_config import producer_config

    producer = Producer(producer_config(settings))
    count = 0
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
        count += 1
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} test records not delivered"
    return count


def produce_transactions(settings: Settings, txns: Iterable[Transaction]) -> int:
    rows = ((t.user_id.encode(), t.model_dump_json().encode(), txn_headers()) for t in txns)
    return produce(settings, settings.topics.transactions, rows)


@dataclass
class TopicReader:
    """Reads a topic from the beginning (all partitions, no consumer group), accumulating records."""

    settings: Settings
    topic: str
    records: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from fraudstream.kafka_config import client_config

        config = client_config(
            self.settings,
            **{
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
        )
        self.consumer = Consumer(config)
        partitions = self.settings.topics.partitions
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(partitions)])

    def poll(self) -> list[Any]:
        for message in self.consumer.consume(num_messages=10_000, timeout=0.5):
            if message.error() is None:
                self.records.append(message)
        return self.records

    def values(self) -> list[bytes]:
        return [m.value() for m in self.records]

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.values()]

    def until(self, count: int, timeout: float, worker: Worker | None = None) -> list[Any]:
        wait_for(lambda: len(self.poll()) >= count, timeout, f"{count} records on {self.topic}", worker)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def _partitions(settings: Settings) -> list[Any]:
    from confluent_kafka import TopicPartition

    topics = (settings.topics.transactions, settings.topics.labels)
    return [TopicPartition(t, p) for t in topics for p in range(settings.topics.partitions)]


def committed_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets on transactions + labels (-1001 where none)."""
    from confluent_kafka import Consumer

    from fraudstream.kafka_config import client_config

    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(_partitions(settings), timeout=20)}
    finally:
        consumer.close()


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """High watermarks of transactions + labels, with -1001 (no commit) where a partition is empty."""
    from confluent_kafka import Consumer

    from fraudstream.kafka_config import client_config

    consumer = Consumer(client_config(settings, **{"group.id": f"probe-{uuid.uuid4().hex[:8]}"}))
    try:
        ends = {}
        for tp in _partitions(settings):
            _low, high = consumer.get_watermark_offsets(tp, timeout=20)
            ends[(tp.topic, tp.partition)] = high if high > 0 else -1001
        return ends
    finally:
        consumer.close()
