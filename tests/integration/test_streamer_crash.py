"""Crash safety: `fraudstream stream` killed with SIGKILL at random points and restarted yields exactly the outputs
and the Redis state of an uninterrupted run over the same input (read_committed; produced_at aside, which is the
wall clock of each run)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from fraudstream.contracts import Transaction
from fraudstream.settings import Settings
from streamer.kafka_engine import SESSION_TIMEOUT_MS
from tests.streamer_kafka_support import isolated_settings, publish, read_all
from tests.streamer_process import start_worker
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = pytest.mark.integration


def _traffic(customers: int) -> list[Transaction]:
    # Six days, so the run stays short; the delayed merchant windows across a longer history are the subject of
    # test_streamer_event_time.py (event-time alignment keeps them independent of how far partitions lag).
    base = simulated_transactions(customers=customers, merchants=400, days=6, seed=21)
    return [t.model_copy(update={"amount": 3000.0}) if i % 97 == 5 else t for i, t in enumerate(base)]


def _finish(process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def _outputs(settings: Settings, topic: str) -> dict[str, bytes]:
    """transaction id -> record bytes without produced_at; fails on any duplicate."""
    found: dict[str, bytes] = {}
    for message in read_all(settings, topic, timeout_s=120):
        data = json.loads(message.value())
        data.pop("produced_at")
        txn_id = data["transaction_id"] if "transaction_id" in data else data["transaction"]["transaction_id"]
        assert txn_id not in found, f"duplicate output for {txn_id} in {topic}"
        found[txn_id] = json.dumps(data, sort_keys=True).encode()
    return found


def _diff(got: dict[str, bytes], expected: dict[str, bytes], key: str) -> str:
    a, b = json.loads(got[key]), json.loads(expected[key])
    flat_a = {**a, **a.get("features", {})}
    flat_b = {**b, **b.get("features", {})}
    return f"{key}: " + ", ".join(
        f"{f}={flat_a.get(f)!r} vs {flat_b.get(f)!r}" for f in flat_b if flat_a.get(f) != flat_b[f]
    )


def _state(client: redis.Redis, namespace: str) -> dict[str, Any]:
    """Every state key of a namespace (cached outputs aside: they hold produced_at and are pruned by batch)."""
    state: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        name = key.decode().removeprefix(namespace)
        if name.endswith(":out"):
            continue
        kind = client.type(key).decode()
        if kind == "string":
            state[name] = client.get(key)
        elif kind == "hash":
            state[name] = client.hgetall(key)
        elif kind == "zset":
            state[name] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            state[name] = sorted(client.smembers(key))
        elif kind == "list":
            state[name] = client.lrange(key, 0, -1)
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {name}")
    return state


def _crash_run(
    stack_settings: Settings, name: str, tmp_path: Path, customers: int, kills: int, min_kills: int = 1
) -> None:
    txns = _traffic(customers)
    publish_tiny_model(tmp_path)
    reference = isolated_settings(stack_settings, f"{name}-ref", tmp_path)
    crashed = isolated_settings(stack_settings, f"{name}-kill", tmp_path)
    publish(reference, txns)
    publish(crashed, txns)
    summary = _finish(start_worker(reference, "ref", idle_exit_s=8.0), timeout_s=1200)
    assert summary["events"] == len(txns)

    rng = random.Random(len(txns))
    done_kills = 0
    while True:
        worker = start_worker(crashed, "victim", idle_exit_s=8.0)
        if done_kills >= kills:
            last = _finish(worker, timeout_s=1200)
            print(f"last worker: {last['records']} records, {last['replayed']} replayed")
            break
        # Startup takes about 3 s; a restart then waits for the killed member's session to expire before it gets
        # partitions, and scores thousands of events a second once it has them. The kills land during startup,
        # mid-batch, between a batch's Redis write and its transaction, and with a transaction in flight.
        wait_s = rng.uniform(2.0, 7.0) if done_kills == 0 else SESSION_TIMEOUT_MS / 1000 + rng.uniform(0.5, 4.0)
        try:
            worker.wait(timeout=wait_s)
            break  # finished before the kill
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            done_kills += 1
    assert done_kills >= min_kills, f"only {done_kills} kills landed before the run finished; use more events"
    print(f"crash run: {len(txns)} events, {done_kills} SIGKILLs survived")

    for topic in ("scores", "alerts"):
        expected = _outputs(reference, getattr(reference.topics, topic))
        got = _outputs(crashed, getattr(crashed.topics, topic))
        assert got.keys() == expected.keys(), f"{topic}: {len(got)} vs {len(expected)} outputs"
        differing = [k for k in expected if got[k] != expected[k]]
        assert not differing, f"{topic}: {len(differing)} outputs differ, first: {_diff(got, expected, differing[0])}"
    assert len(_outputs(crashed, crashed.topics.scores)) == len(txns)
    client = redis.Redis.from_url(stack_settings.redis_url)
    try:
        assert _state(client, crashed.redis.namespace) == _state(client, reference.redis.namespace)
    finally:
        client.close()


@pytest.mark.slow
def test_sigkill_at_random_points_replays_into_identical_outputs(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    _crash_run(stack_settings, unique_name, tmp_path, customers=4000, kills=4)  # about 48k events
    assert time.monotonic() - started < 900


@pytest.mark.slow
@pytest.mark.full
def test_sigkill_during_a_100k_event_run_replays_into_identical_outputs(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    _crash_run(stack_settings, unique_name, tmp_path, customers=8200, kills=8, min_kills=5)  # about 100k events
