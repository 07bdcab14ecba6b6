"""The moving parts of an end-to-end run: a streamer subprocess with its monitor, a score collector, the publisher."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bankbus.pacing import Pacing
from bankbus.publisher import PublishReport, outbox_for, send
from bench.monitor import ProcessMonitor
from fraudstream.errors import InfraError
from fraudstream.infra.topics import partition_count
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that rebuilds `settings` in a child process (fraudstream.settings_env)."""
    from fraudstream.settings_env import settings_env as env_of

    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(env_of(settings))
    env.update({"FRAUD_LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"})
    return env


@dataclass
class EngineProcess:
    """`fraudstream stream --engine E` as a subprocess, sampled by a ProcessMonitor; stopped with SIGTERM."""

    settings: Settings
    engine: str
    log_path: Path
    idle_exit_s: float = 600.0
    process: subprocess.Popen[bytes] | None = None
    monitor: ProcessMonitor | None = None

    def start(self) -> EngineProcess:
        command = [sys.executable, "-m", "fraudstream", "stream", "--engine", self.engine,
                   "--idle-exit", str(self.idle_exit_s), "--instance-id", f"bench-{uuid.uuid4().hex[:6]}",
                   "--from", "earliest"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=settings_env(self.settings),
                                            stdout=log, stderr=subprocess.STDOUT)
        self.monitor = ProcessMonitor(self.process.pid).start()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any] | None:
        """SIGTERM, wait; the kafka engine's JSON summary line (None for faust, which prints none)."""
        assert self.process is not None and self.monitor is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.monitor.stop()
        for line in reversed(self.log_path.read_text(errors="replace").splitlines()):
            if line.startswith("{") and '"records"' in line:
                return dict(json.loads(line))
        return None


@dataclass
class ScoreCollector:
    """Reads a scores topic from the start (read_committed): transaction id -> the score record's Kafka timestamp.

    It fetches the way the engine's consumers do (FRAUD_STREAMER__FETCH_MIN_BYTES / __FETCH_MAX_WAIT_MS): with
    librdkafka's 1-byte default the broker answered each of its fetches with a record or two, and that reader's load
    was counted in the broker CPU the bench reports. The latency it measures comes from the records' timestamps, so
    the fetch wait does not enter it."""

    settings: Settings
    times_ms: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ScoreCollector:
        topic = self.settings.topics.scores
        fetch = {"fetch.min.bytes": self.settings.streamer.fetch_min_bytes,
                 "fetch.wait.max.ms": self.settings.streamer.fetch_max_wait_ms}  # fmt: skip
        consumer = Consumer(consumer_config(self.settings, f"bench-reader-{uuid.uuid4().hex[:8]}", **fetch))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                         for p in range(partition_count(self.settings, topic))])
        self._thread = threading.Thread(target=self._loop, args=(consumer,), daemon=True, name="score-collector")
        self._thread.start()
        return self

    def _loop(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, timeout=0.2):
                    if message.error() is not None:
                        continue
                    txn_id = json.loads(message.value() or b"{}").get("transaction_id", "")
                    if txn_id in self.times_ms:
                        self.duplicates += 1
                    self.times_ms[txn_id] = message.timestamp()[1]
        finally:
            consumer.close()

    def wait_for(self, count: int, worker: EngineProcess, stall_s: float = 90.0) -> None:
        """Until `count` scores arrived; InfraError if the worker dies or nothing arrives for stall_s."""
        seen, last_change = -1, time.monotonic()
        while len(self.times_ms) < count:
            if len(self.times_ms) != seen:
                seen, last_change = len(self.times_ms), time.monotonic()
            if not worker.alive():
                raise InfraError(f"the {worker.engine} worker exited early; its log ends:\n{worker.log_tail()}")
            if time.monotonic() - last_change > stall_s:
                raise InfraError(f"no new score for {stall_s:.0f} s ({seen} of {count}); log:\n{worker.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def publish_frame(settings: Settings, frame: pd.DataFrame, rate: float | None = None) -> tuple[PublishReport, Any]:
    """Publish with bankbus' publisher. At a fixed rate, each message's Kafka timestamp is its planned send time
    (so score timestamp - transaction timestamp is publish-to-score latency); returns {txn id: publish ms} then."""
    outbox = outbox_for(frame, settings.topics.transactions)
    if rate is None:  # Kafka timestamps = the publish start (not the simulated event time)
        outbox.event_ns = np.full(len(outbox), time.time_ns(), dtype=np.int64)
        return send(settings, outbox, Pacing("max")), None
    pacing = Pacing("rate", rate)
    offsets = pacing.offsets(outbox.event_ns)
    assert offsets is not None
    start_ns = time.time_ns()
    outbox.event_ns = start_ns + (offsets * 1e9).astype(np.int64)
    ids = [json.loads(v)["transaction_id"] for v in outbox.values]  # type: ignore[arg-type]
    published = dict(zip(ids, (outbox.event_ns // 1_000_000).tolist(), strict=True))
    overrides: dict[str, Any] = {"linger.ms": 1}
    return send(settings, outbox, pacing, **overrides), published
