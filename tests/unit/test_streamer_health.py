"""/health and /ready of a kafka-engine worker: the checks, their caching, and the HTTP answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from streamer.health import ProbeServer, WorkerHealth
from streamer.metrics import StreamMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """A probe whose answer the test sets; counts how often it is asked."""

    def __init__(self) -> None:
        self.down: str | None = None
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        if self.down == "raise":
            raise ConnectionError("refused")
        return self.down


@pytest.fixture
def parts() -> tuple[WorkerHealth, Dependency, Dependency, Clock]:
    redis, kafka, clock = Dependency(), Dependency(), Clock()
    return WorkerHealth(redis, kafka, stall_s=60.0, ttl_s=1.0, clock=clock), redis, kafka, clock


def _ready_worker(health: WorkerHealth) -> None:
    health.assigned = lambda: 2
    health.model_version = lambda: "v1"


Parts = tuple[WorkerHealth, Dependency, Dependency, Clock]


def test_not_ready_until_partitions_and_model_then_ready(parts: Parts) -> None:
    health, _, _, clock = parts
    ok, body = health.ready()
    assert not ok and body["checks"]["partitions"] == {"ok": False, "detail": "no transactions partition assigned"}
    assert body["checks"]["model"]["ok"] is False
    health.model_version = lambda: "v1"
    assert health.ready()[0] is False  # still nothing assigned
    health.assigned = lambda: 3
    clock.now += 2
    ok, body = health.ready()
    assert ok and body == {"ready": True, "checks": {
        "partitions": {"ok": True, "detail": "3 assigned"}, "redis": {"ok": True, "detail": "answering"},
        "kafka": {"ok": True, "detail": "answering"}, "model": {"ok": True, "detail": "v1"}}}


@pytest.mark.parametrize("which", ["redis", "kafka"])
def test_a_dependency_down_or_raising_makes_it_not_ready(
    parts: tuple[WorkerHealth, Dependency, Dependency, Clock], which: str
) -> None:
    health, redis, kafka, clock = parts
    _ready_worker(health)
    dep = redis if which == "redis" else kafka
    dep.down = "Connection refused"
    ok, body = health.ready()
    assert not ok and body["checks"][which] == {"ok": False, "detail": "Connection refused"}
    dep.down = "raise"
    clock.now += 1.5
    ok, body = health.ready()
    assert not ok and body["checks"][which]["detail"] == "ConnectionError: refused"
    dep.down = None
    clock.now += 1.5
    assert health.ready()[0] is True


def test_probes_are_cached_for_their_ttl(parts: tuple[WorkerHealth, Dependency, Dependency, Clock]) -> None:
    health, redis, kafka, clock = parts
    _ready_worker(health)
    for _ in range(50):
        health.ready()
    assert (redis.calls, kafka.calls) == (1, 1)
    clock.now += 1.0
    health.ready()
    assert (redis.calls, kafka.calls) == (2, 2)


def test_live_while_starting_and_polling_not_once_stalled(
    parts: tuple[WorkerHealth, Dependency, Dependency, Clock]
) -> None:
    health, redis, _, clock = parts
    assert health.live() == (True, {"live": True, "loop": "starting"})
    last = clock.now
    health.last_poll = lambda: last
    clock.now += 59
    assert health.live()[0] is True
    redis.down = "down"  # liveness does not depend on Redis: a worker waiting out an outage is alive
    clock.now += 2
    ok, body = health.live()
    assert not ok and body["last_poll_s_ago"] == 61.0


@pytest.fixture
def served(parts: tuple[WorkerHealth, Dependency, Dependency, Clock]) -> Iterator[tuple[str, WorkerHealth]]:
    metrics = StreamMetrics()
    metrics.events.inc(7)
    server = ProbeServer(metrics, "127.0.0.1", 0, parts[0])
    try:
        yield f"http://127.0.0.1:{server.port}", parts[0]
    finally:
        server.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_answers(served: tuple[str, WorkerHealth]) -> None:
    base, health = served
    status, body = _get(f"{base}/ready")
    assert status == 503 and json.loads(body)["ready"] is False
    _ready_worker(health)
    status, body = _get(f"{base}/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    assert _get(f"{base}/health")[0] == 200
    status, body = _get(f"{base}/metrics")
    assert status == 200 and b"fraudstream_events_total 7.0" in body
    assert _get(f"{base}/nothing")[0] == 404
