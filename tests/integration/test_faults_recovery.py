"""Bounded recovery under paced load (kafka engine, exactly once): the test's own broker is restarted five times and
SIGKILLed once while transactions commit every 100 ms; every event is scored exactly once in the committed output
and no stall, once the broker is back, lasts longer than FRAUD_STREAMER__RECOVERY_TIMEOUT_S; SIGTERM then ends the
worker within the close bound."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from fraudstream.contracts import Transaction
from fraudstream.infra import kafka_embedded
from fraudstream.infra.processes import read_pid
from fraudstream.kafka_config import consumer_config, producer_config
from fraudstream.settings import Settings
from tests.fault_support import own_broker_settings, traffic
from tests.streamer_kafka_support import isolated_settings, wait_until
from tests.streamer_process import REPO, env_for
from tests.streamer_support import publish_tiny_model, txn_headers

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.slow]

RECOVERY_S = 20.0  # FRAUD_STREAMER__RECOVERY_TIMEOUT_S of the worker
RATE = 100.0  # events/s published throughout
RESTARTS = 5  # graceful stop + start
DOWN_S = 2.0  # the broker stays down this long each time
FLOWING_S = 3.0  # normal flow between two faults


class Publisher(threading.Thread):
    """Publishes transactions at RATE until stopped (the idempotent producer rides through the restarts)."""

    def __init__(self, settings: Settings, txns: list[Transaction]) -> None:
        super().__init__(daemon=True)
        self.settings, self.txns = settings, txns
        self.stop_event = threading.Event()
        self.sent: list[str] = []
        self.failed: list[str] = []

    def run(self) -> None:
        producer = Producer(producer_config(self.settings, **{"message.timeout.ms": 300_000}))
        began = time.monotonic()
        for i, txn in enumerate(self.txns):
            if self.stop_event.is_set():
                break
            time.sleep(max(0.0, began + i / RATE - time.monotonic()))
            producer.produce(self.settings.topics.transactions, key=txn.user_id, value=txn.model_dump_json(),
                             headers=txn_headers(), on_delivery=self._delivered)
            self.sent.append(txn.transaction_id)
            producer.poll(0)
        assert producer.flush(300) == 0

    def _delivered(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.failed.append(error.str())


class ScoreWatcher(threading.Thread):
    """Reads `scores` read_committed from the start and notes when each record became visible."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.partitions = settings, partitions
        self.stop_event = threading.Event()
        self.seen: list[tuple[float, str]] = []

    def run(self) -> None:
        consumer = Consumer(consumer_config(self.settings, "score-watcher"))
        topic = self.settings.topics.scores
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        try:
            while not self.stop_event.is_set():
                for message in consumer.consume(1000, timeout=0.2):
                    if message.error() is None:
                        self.seen.append((time.monotonic(), json.loads(message.value())["transaction_id"]))
        finally:
            consumer.close()

    def count(self) -> int:
        return len(self.seen)

    def first_after(self, moment: float) -> float | None:
        return next((t for t, _ in self.seen if t > moment), None)


def _stalls(arrivals: list[float], outages: list[tuple[float, float]], end: float) -> float:
    """The longest time without a new committed score while the broker was up and events were waiting."""
    longest = 0.0
    points = sorted(arrivals)
    for before, after in zip(points, [*points[1:], end], strict=True):
        gap = after - before
        for down, up in outages:
            gap -= max(0.0, min(after, up) - max(before, down))
        longest = max(longest, gap)
    return longest


def test_five_broker_restarts_and_a_kill_mid_commit_every_event_scored_once_no_stall_past_the_bound(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    txns = traffic(customers=1500, seed=41)
    own = own_broker_settings(stack_settings, tmp_path / "broker")
    kafka_embedded.start(own)
    publisher: Publisher | None = None
    watcher: ScoreWatcher | None = None
    worker: subprocess.Popen[str] | None = None
    log_path = tmp_path / "worker.log"
    try:
        publish_tiny_model(tmp_path / "registry")
        settings = isolated_settings(own, unique_name, tmp_path / "registry", partitions=3,
                                     recovery_timeout_s=RECOVERY_S)
        with log_path.open("w") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--idle-exit", "600",
                 "--instance-id", "w", "--from", "earliest"],
                cwd=REPO, env={**env_for(settings), "FRAUD_LOG_LEVEL": "INFO", "PYTHONFAULTHANDLER": "1"},
                stdout=subprocess.PIPE, stderr=log_file, text=True,
            )
        publisher, watcher = Publisher(settings, txns), ScoreWatcher(settings, 3)
        publisher.start()
        watcher.start()
        wait_until(lambda: watcher.count() > 100, 120, "the first scores")
        print(f"first scores {time.monotonic() - began:.1f} s after the start", flush=True)

        outages: list[tuple[float, float]] = []
        recoveries: list[float] = []
        faults = ["stop"] * RESTARTS
        faults.insert(2, "kill")  # SIGKILL mid-run: transactions commit every 100 ms under this load
        for fault in faults:
            time.sleep(FLOWING_S)
            down_at = time.monotonic()
            if fault == "kill":
                pid = read_pid(kafka_embedded.paths(own).pid_file)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda pid=pid: not _alive(pid), 30, "the killed broker gone", every_s=0.1)
                kafka_embedded.paths(own).pid_file.unlink(missing_ok=True)
            else:
                assert kafka_embedded.stop(own)
            stopped_at = time.monotonic()
            time.sleep(DOWN_S)
            kafka_embedded.start(own)
            up_at = time.monotonic()
            print(f"broker {fault}: stopping took {stopped_at - down_at:.1f} s, starting "
                  f"{up_at - stopped_at - DOWN_S:.1f} s", flush=True)
            outages.append((down_at, up_at))
            assert worker.poll() is None, f"the worker died after a broker {fault}: {log_path.read_text()[-3000:]}"
            wait_until(lambda up_at=up_at: watcher.first_after(up_at) is not None, 3 * RECOVERY_S,
                       f"committed scores after the broker {fault}", every_s=0.2)
            recovered = watcher.first_after(up_at)
            assert recovered is not None
            recoveries.append(recovered - up_at)
            print(f"broker {fault}: down {up_at - down_at:.1f} s, first committed score {recovered - up_at:.1f} s "
                  "after it was back", flush=True)

        publisher.stop_event.set()
        publisher.join(300)
        sent = set(publisher.sent)
        assert not publisher.failed, publisher.failed[:3]
        wait_until(lambda: len({t for _, t in watcher.seen}) >= len(sent), 6 * RECOVERY_S, "every event scored",
                   every_s=0.5)
        done_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        began = time.monotonic()
        worker.communicate(timeout=90)
        close_s = time.monotonic() - began
        time.sleep(1.0)  # the watcher catches up on anything the final commit made visible
        watcher.stop_event.set()
        watcher.join(30)

        counts = Counter(t for _, t in watcher.seen)
        doubled = [t for t, n in counts.items() if n > 1]
        longest = _stalls([t for t, _ in watcher.seen if t <= done_at], outages, done_at)
        log = log_path.read_text()
        report = {"broker_restarts": RESTARTS, "broker_kills": 1, "events": len(sent), "scored": len(counts),
                  "scored_twice": len(doubled), "recovery_s": [round(r, 1) for r in recoveries],
                  "longest_stall_s": round(longest, 1), "member_restarts": log.count("restarting this member"),
                  "failed_commits_that_went_through": log.count("but went through"),
                  "close_s": round(close_s, 1), "exit": worker.returncode}
        print("recovery fault run:", json.dumps(report))
        assert worker.returncode == 0, log[-3000:]
        assert set(counts) == sent and not doubled, report
        assert max(recoveries) < RECOVERY_S and longest < RECOVERY_S, report
        assert close_s < 60, report
    except AssertionError:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack into the log
            time.sleep(2)
        shutil.copy(log_path, Path("/tmp") / f"{unique_name}.worker.log")  # for the one who debugs it
        raise
    finally:
        for thread in (publisher, watcher):
            if thread is not None:
                thread.stop_event.set()
        if worker is not None and worker.poll() is None:
            worker.kill()
        kafka_embedded.stop(own)


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child (the broker was started here): reaped
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
