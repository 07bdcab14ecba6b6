"""The kafka engine against the real broker and redis-server: alerts, DLQ, model swap, two workers, Redis outage."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fraudstream.contracts import Alert, DeadLetter, Label, LabelSource, ScoreRecord, Transaction
from fraudstream.settings import Settings
from tests.streamer_kafka_support import EngineThread, isolated_settings, publish, read_all, wait_until
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def txns() -> list[Transaction]:
    """Simulated traffic with every 25th amount made large, so the tiny model has something to alert on."""
    base = simulated_transactions(customers=60, merchants=40, days=4, seed=3)
    return [t.model_copy(update={"amount": 5000.0}) if i % 25 == 7 else t for i, t in enumerate(base)]


def scores_of(settings: Settings) -> list[ScoreRecord]:
    return [ScoreRecord.model_validate_json(m.value()) for m in read_all(settings, settings.topics.scores)]


def alerts_of(settings: Settings) -> list[Alert]:
    return [Alert.model_validate_json(m.value()) for m in read_all(settings, settings.topics.alerts)]


def assert_once_each(records: list[Any], expected_ids: set[str], attr: str = "transaction_id") -> None:
    counts = Counter(getattr(r, attr) for r in records)
    assert set(counts) == expected_ids
    assert max(counts.values()) == 1, f"duplicates: {[k for k, v in counts.items() if v > 1][:5]}"


def test_traffic_in_alerts_out_with_reasons_and_dead_letters(
    stack_settings: Settings, unique_name: str, tmp_path: Path, txns: list[Transaction]
) -> None:
    version = publish_tiny_model(tmp_path)
    settings = isolated_settings(stack_settings, unique_name, tmp_path)
    good = txns[:150]
    bad: list[tuple[str, bytes | None]] = [("u1", b"{broken"), ("u2", b"\xff\xfe"), ("u3", None)]
    publish(settings, [*good[:50], *bad, *good[50:]])
    label = Label(
        transaction_id=good[0].transaction_id,
        user_id=good[0].user_id,
        is_fraud=True,
        source=LabelSource.analyst,
        labelled_at=good[0].timestamp,
        merchant_id=good[0].merchant_id,
        transaction_timestamp=good[0].timestamp,
    )
    publish(settings, [(label.user_id, label.model_dump_json().encode())], topic=settings.topics.labels)
    worker = EngineThread(settings, "w1").start()
    try:
        wait_until(lambda: len(scores_of(settings)) >= len(good), 90, "every good transaction scored")
    finally:
        worker.stop()
    scores = scores_of(settings)
    assert_once_each(scores, {t.transaction_id for t in good})
    alerts = alerts_of(settings)
    assert alerts and {a.transaction.transaction_id for a in alerts} == {s.transaction_id for s in scores if s.alerted}
    assert all(a.model_version == version and a.reasons and all(r.text for r in a.reasons) for a in alerts)
    letters = [DeadLetter.model_validate_json(m.value()) for m in read_all(settings, settings.topics.dlq)]
    assert sorted(letter.error_class for letter in letters) == ["EmptyRecord", "InvalidJson", "InvalidUtf8"]
    assert worker.engine.stats.dlq == 3 and worker.runtime.store.counters["labels_applied"] == 1


def test_model_swap_mid_stream_changes_the_version_on_later_alerts(
    stack_settings: Settings, unique_name: str, tmp_path: Path, txns: list[Transaction]
) -> None:
    first = publish_tiny_model(tmp_path, threshold=0.5)
    settings = isolated_settings(stack_settings, unique_name, tmp_path)
    worker = EngineThread(settings, "w1").start()
    try:
        publish(settings, txns[:100])
        wait_until(lambda: len(scores_of(settings)) >= 100, 90, "the first half scored")
        time.sleep(1.1)  # versions are named by the second
        second = publish_tiny_model(tmp_path, threshold=0.3, seed=5)
        wait_until(lambda: worker.runtime.holder.version == second, 30, "the background reload")
        batches_before = worker.engine.stats.batches
        publish(settings, txns[100:200])
        wait_until(lambda: len(scores_of(settings)) >= 200, 90, "the second half scored")
    finally:
        worker.stop()
    versions = {s.transaction_id: s.model_version for s in scores_of(settings)}
    assert {versions[t.transaction_id] for t in txns[:100]} == {first}
    assert {versions[t.transaction_id] for t in txns[100:200]} == {second}
    later = {t.transaction_id for t in txns[100:200]}
    assert {a.model_version for a in alerts_of(settings) if a.transaction.transaction_id in later} == {second}
    assert worker.engine.stats.batches > batches_before and worker.engine.stats.redis_retries == 0


def test_two_workers_split_partitions_and_one_takes_over(
    stack_settings: Settings, unique_name: str, tmp_path: Path, txns: list[Transaction]
) -> None:
    publish_tiny_model(tmp_path)
    settings = isolated_settings(stack_settings, unique_name, tmp_path, partitions=4)
    a = EngineThread(settings, "wa").start()
    b = EngineThread(settings, "wb").start()
    try:
        def owns_transactions(worker: EngineThread) -> bool:
            return any(topic == settings.topics.transactions for topic, _ in worker.engine._assigned)

        wait_until(lambda: owns_transactions(a) and owns_transactions(b), 60, "both workers own transactions")
        publish(settings, txns[:150])
        wait_until(lambda: len(scores_of(settings)) >= 150, 90, "the first part scored")
        assert a.engine.stats.events > 0 and b.engine.stats.events > 0, "the partitions were not shared"
        a.stop()
        publish(settings, txns[150:])
        wait_until(lambda: len(scores_of(settings)) >= len(txns), 90, "the rest scored by the survivor")
    finally:
        if a.thread is not None and a.thread.is_alive():
            a.stop()
        b.stop()
    assert_once_each(scores_of(settings), {t.transaction_id for t in txns})
    alerts = alerts_of(settings)
    assert len(alerts) == len({x.alert_id for x in alerts}) > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    command = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_outage_pauses_and_resumes_without_loss_or_duplicates(
    stack_settings: Settings, unique_name: str, tmp_path: Path, txns: list[Transaction]
) -> None:
    publish_tiny_model(tmp_path / "registry")
    port = _free_port()
    (tmp_path / "redis").mkdir()
    redis_process = _start_redis(port, tmp_path / "redis")
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry").with_overrides(
        redis={"url": f"redis://127.0.0.1:{port}/0", "socket_timeout_s": 1.0}
    )
    worker = EngineThread(settings, "w1").start()
    try:
        publish(settings, txns[:120])
        wait_until(lambda: len(scores_of(settings)) >= 120, 90, "the first part scored")
        os.kill(redis_process.pid, signal.SIGKILL)
        redis_process.wait()
        publish(settings, txns[120:])
        wait_until(lambda: worker.engine.stats.redis_retries >= 2, 60, "the engine to retry")
        assert len(scores_of(settings)) == 120, "something was committed while Redis was down"
        redis_process = _start_redis(port, tmp_path / "redis")
        wait_until(lambda: len(scores_of(settings)) >= len(txns), 120, "the rest scored after Redis came back")
    finally:
        worker.stop()
        redis_process.kill()
        redis_process.wait()
    assert_once_each(scores_of(settings), {t.transaction_id for t in txns})
