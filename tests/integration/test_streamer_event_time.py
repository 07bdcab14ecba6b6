"""One history three ways through the kafka engine (real broker and Redis): drained as a backlog, published while
the worker runs (paced), and as a backlog with five SIGKILLs. Every score and every alert (with all its feature
values, the delayed merchant windows included) is the same record for record: event-time alignment makes the
merchant features independent of how the input was batched (streamer/alignment.py). With
FRAUD_STREAMER__EVENT_TIME_ALIGNMENT=false the paced run's alerts differ (10,385 of them in one try)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fraudstream.settings import Settings
from tests.fault_support import group_committed
from tests.streamer_kafka_support import isolated_settings, publish, read_all
from tests.streamer_process import start_worker
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.full]

KILLS = 5


def _traffic() -> list[Any]:
    # 21 days, three times the label delay, over few merchants: the delayed merchant windows read the other
    # partitions' transactions of days before, which a backlog lets run far ahead of each other
    return simulated_transactions(customers=500, merchants=30, days=21, seed=33)


def _finish(process: subprocess.Popen[str], timeout_s: float = 600) -> None:
    _out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err[-3000:]


def _outputs(settings: Settings, topic: str) -> dict[str, dict[str, object]]:
    """transaction id -> output record without produced_at; fails on any duplicate."""
    found: dict[str, dict[str, object]] = {}
    for message in read_all(settings, topic, timeout_s=120):
        data = json.loads(message.value())
        data.pop("produced_at")
        txn_id = data["transaction_id"] if "transaction_id" in data else data["transaction"]["transaction_id"]
        assert txn_id not in found, f"duplicate output for {txn_id} in {topic}"
        found[txn_id] = data
    return found


def _paced(settings: Settings, txns: list[Any], chunks: int = 40, pause_s: float = 0.2) -> None:
    worker = start_worker(settings, "paced", idle_exit_s=8.0)
    time.sleep(6.0)  # joined and assigned
    step = -(-len(txns) // chunks)
    for lo in range(0, len(txns), step):
        publish(settings, txns[lo : lo + step])
        time.sleep(pause_s)
    _finish(worker)


def _killed(settings: Settings, total: int) -> int:
    """Run workers over the backlog, SIGKILLing each once its group has committed another seventh of it. Each restart
    keeps the worker's instance id, as a deployment does: its producer fences the killed one and ends its open
    transaction at once (under a new id that transaction would hold back read_committed readers until it times
    out)."""
    kills = 0
    while True:
        worker = start_worker(settings, "victim", idle_exit_s=8.0)
        if kills >= KILLS:
            _finish(worker)
            return kills
        target = min(group_committed(settings) + total // (KILLS + 2), total - 1)
        deadline = time.monotonic() + 300
        while worker.poll() is None and group_committed(settings) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        if worker.poll() is not None:  # finished before the kill
            _finish(worker)
            return kills
        worker.kill()
        worker.communicate()
        kills += 1


def _differences(got: dict[str, dict[str, object]], expected: dict[str, dict[str, object]]) -> list[str]:
    out = []
    for key, want in expected.items():
        have = got.get(key)
        if have != want:
            flat_h = {**(have or {}), **dict((have or {}).get("features", {}))}  # type: ignore[call-overload]
            flat_w = {**want, **dict(want.get("features", {}))}  # type: ignore[call-overload]
            out.append(f"{key}: " + ", ".join(f"{f}={flat_h.get(f)!r} vs {v!r}" for f, v in flat_w.items()
                                              if f != "features" and flat_h.get(f) != v))
    return out


def test_paced_backlog_and_killed_runs_give_identical_scores_and_alerts(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    txns = _traffic()
    publish_tiny_model(tmp_path, threshold=0.0)  # every event alerts: its alert carries every feature value
    # a partition that fetches nothing for alignment_max_wait_ms (2 s by default) stops holding the others back:
    # liveness for an idle partition, but on a loaded machine a busy one can miss it too, and then its neighbours'
    # merchant windows depend on timing. The test is about alignment, so its waits are unbounded in practice.
    backlog, paced, killed = (isolated_settings(stack_settings, f"{unique_name}-{kind}", tmp_path,
                                                alignment_max_wait_ms=600_000)
                              for kind in ("backlog", "paced", "killed"))
    publish(backlog, txns)
    _finish(start_worker(backlog, "backlog", idle_exit_s=8.0))
    _paced(paced, txns)
    publish(killed, txns)
    kills = _killed(killed, len(txns))
    assert kills >= 3, f"only {kills} kills landed before the run finished; use more events"

    for topic in ("scores", "alerts"):
        expected = _outputs(backlog, getattr(backlog.topics, topic))
        assert len(expected) == len(txns), f"{topic}: {len(expected)} outputs for {len(txns)} transactions"
        for name, run in (("paced", paced), ("killed", killed)):
            got = _outputs(run, getattr(run.topics, topic))
            assert got.keys() == expected.keys(), f"{name} {topic}: {len(got)} vs {len(expected)} outputs"
            differing = _differences(got, expected)
            assert not differing, f"{name} {topic}: {len(differing)} outputs differ, first: {differing[0]}"
    merchant_counts = {a["features"]["merchant_count_7d"] for a in expected.values()}  # type: ignore[index]
    assert len(merchant_counts) > 20, "the history must exercise the delayed merchant windows"
