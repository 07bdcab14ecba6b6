"""Fault tests of the full mode (`make test-full`): Redis down 30 s, the broker restarted, a bad-input corpus
through both engines. SIGKILL crash safety is in test_streamer_crash.py, five broker restarts and a kill under
paced load in test_faults_recovery.py, the leak check (allocations per event) in test_soak_alloc.py."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from fraudstream.contracts import DeadLetter, ScoreRecord
from fraudstream.settings import Settings
from streamer.validation import MAX_DLQ_ORIGINAL_BYTES
from tests.bad_input_corpus import corpus
from tests.fault_support import (
    assert_same_outputs,
    committed_count,
    free_port,
    own_broker_settings,
    reference_run,
    start_kafka_worker,
    traffic,
)
from tests.integration.test_streamer_crash import _finish
from tests.integration.test_streamer_kafka import _start_redis
from tests.streamer_kafka_support import isolated_settings, publish, read_all, wait_until
from tests.streamer_support import publish_tiny_model

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.slow]

OUTAGE_S = 30.0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_stopped_30s_mid_run_pauses_then_resumes_with_nothing_lost_or_doubled(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    txns = traffic(customers=700)
    publish_tiny_model(tmp_path / "registry")
    reference = reference_run(stack_settings, unique_name, tmp_path / "registry", txns)
    port = free_port()
    (tmp_path / "redis").mkdir()
    redis_process = _start_redis(port, tmp_path / "redis")  # AOF, fsync always: restarted with its data
    settings = isolated_settings(stack_settings, f"{unique_name}-out", tmp_path / "registry").with_overrides(
        redis={"url": f"redis://127.0.0.1:{port}/0", "socket_timeout_s": 1.0}
    )
    half = len(txns) // 2
    publish(settings, txns[:half])
    # Stops at the record count: the engine's idle clock counts from the last batch's arrival, so a batch held
    # through a 30 s outage would look idle the moment it commits (--idle-exit is only a safety net here).
    worker = start_kafka_worker(settings, "w", idle_exit_s=120.0, max_events=len(txns))
    try:
        wait_until(lambda: committed_count(settings, settings.topics.scores) >= half // 3, 300, "a third scored")
        os.kill(redis_process.pid, signal.SIGKILL)  # mid-run: the backlog is still draining
        redis_process.wait()
        publish(settings, txns[half:])
        time.sleep(3)
        paused_at = committed_count(settings, settings.topics.scores)
        time.sleep(OUTAGE_S - 3)
        assert worker.poll() is None, "the worker died during the Redis outage"
        assert committed_count(settings, settings.topics.scores) == paused_at, "outputs committed while Redis was down"
        assert paused_at < len(txns)
        redis_process = _start_redis(port, tmp_path / "redis")
        summary = _finish(worker, timeout_s=900)
    finally:
        if worker.poll() is None:
            worker.kill()
        redis_process.kill()
        redis_process.wait()
    assert summary["redis_retries"] >= 1
    assert_same_outputs(settings, reference, len(txns))


def test_broker_restarted_mid_run_loses_nothing(stack_settings: Settings, unique_name: str, tmp_path: Path) -> None:
    from fraudstream.infra import kafka_embedded

    txns = traffic(customers=700, seed=32)
    publish_tiny_model(tmp_path / "registry")
    reference = reference_run(stack_settings, unique_name, tmp_path / "registry", txns)
    own = own_broker_settings(stack_settings, tmp_path / "broker")
    kafka_embedded.start(own)
    try:
        settings = isolated_settings(own, f"{unique_name}-own", tmp_path / "registry")
        publish(settings, txns)
        worker = start_kafka_worker(settings, "w", idle_exit_s=180.0, max_events=len(txns))
        try:
            wait_until(lambda: committed_count(settings, settings.topics.scores) >= len(txns) // 4, 300,
                       "a quarter scored")
            assert kafka_embedded.stop(own)
            time.sleep(5)
            kafka_embedded.start(own)
            summary = _finish(worker, timeout_s=900)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert summary["events"] >= len(txns)
        assert_same_outputs(settings, reference, len(txns))
    finally:
        kafka_embedded.stop(own)


@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_bad_input_corpus_through_a_worker_all_dead_lettered_and_good_scored(
    stack_settings: Settings, unique_name: str, tmp_path: Path, engine: str
) -> None:
    good = traffic(customers=80, seed=33)
    bad = corpus(good, size=2000)
    publish_tiny_model(tmp_path)
    settings = isolated_settings(stack_settings, unique_name, tmp_path, partitions=1)
    items: list[object] = []
    for i, record in enumerate(bad):
        if i % 2 == 0:
            items.append(good[i // 2 % len(good)] if i // 2 < len(good) else good[0])
        items.append((record.key, record.value, record.headers))
    good_sent = [t for t in items if not isinstance(t, tuple)]
    unique_good = {t.transaction_id for t in good_sent}  # type: ignore[attr-defined]
    publish(settings, items)  # type: ignore[arg-type]
    if engine == "kafka":
        _finish(start_kafka_worker(settings, "w", idle_exit_s=8.0), timeout_s=600)
    else:
        from tests.faust_support import start_worker

        worker = start_worker(settings.with_overrides(streamer={"web_port": free_port()}), tmp_path / "faust.log",
                              "--idle-exit", "8")
        assert worker.process.wait(600) == 0, worker.log()[-3000:]
    every = [DeadLetter.model_validate_json(m.value()) for m in read_all(settings, settings.topics.dlq, 120)]
    # good[0] is sent again and again once the good ones run out: each copy after the first is a duplicate
    resent = {x.offset for x in every if x.error_class == "DuplicateTransaction"}
    assert len(resent) == len(good_sent) - len(unique_good)
    letters = [x for x in every if x.error_class != "DuplicateTransaction"]
    by_offset = Counter(letter.offset for letter in letters)
    assert len(by_offset) == len(bad), f"{len(bad) - len(by_offset)} bad records missing from the DLQ"
    if engine == "kafka":
        assert max(by_offset.values()) == 1, "a bad record was dead-lettered twice"
    assert all(letter.error_class and letter.error_message for letter in letters)
    expected = Counter((r.value or b"")[:MAX_DLQ_ORIGINAL_BYTES] for r in bad)
    assert Counter(letter.original() for letter in {x.offset: x for x in letters}.values()) == expected
    scored = [ScoreRecord.model_validate_json(m.value()).transaction_id
              for m in read_all(settings, settings.topics.scores, 120)]
    assert set(scored) == unique_good
