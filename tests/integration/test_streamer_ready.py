"""`fraudstream stream` answers /ready correctly: not before its partitions are assigned, yes once they are, not
while Redis is down (a redis-server of the test's own, stopped and started again), and /health stays live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fraudstream.settings import Settings
from tests.fault_support import free_port
from tests.streamer_kafka_support import isolated_settings, publish
from tests.streamer_process import REPO, env_for
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int | None, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None, {}


def _wait_for(what: str, check: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for("redis-server", lambda: _redis_answers(port), 20)
    return process


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _worker(settings: Settings, name: str, metrics_port: int) -> subprocess.Popen[str]:
    env = {**env_for(settings), "FRAUD_STREAMER__METRICS_PORT": str(metrics_port)}
    command = [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--instance-id", name]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _probe(settings: Settings, port: int, which: str) -> int:
    env = {**env_for(settings), "FRAUD_STREAMER__METRICS_PORT": str(port)}
    return subprocess.run([sys.executable, "-m", "streamer.probe", which], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=30).returncode


def test_ready_only_when_assigned_with_redis_kafka_and_a_model(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    redis_port = free_port()
    (tmp_path / "redis").mkdir()
    redis_process = _start_redis(redis_port, tmp_path / "redis")
    publish_tiny_model(tmp_path / "registry")
    # one partition: of two workers in the group, exactly one can be assigned
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry", partitions=1).with_overrides(
        redis={"url": f"redis://127.0.0.1:{redis_port}/0", "socket_timeout_s": 1.0}
    )
    publish(settings, simulated_transactions(customers=50, merchants=30, days=1, seed=5)[:200])
    ports = {"a": free_port(), "b": free_port()}
    workers = {"a": _worker(settings, "a", ports["a"])}
    try:
        # the probe server is up before the model loads and the group assigns anything: live, not ready
        first_status, first = _wait_for("a's probe server", lambda: (lambda r: r if r[0] else None)(
            _get(ports["a"], "/ready")))
        assert first_status == 503 and first["checks"]["partitions"]["ok"] is False, first
        assert _get(ports["a"], "/health")[0] == 200
        assert _probe(settings, ports["a"], "ready") == 1

        _wait_for("a ready", lambda: _get(ports["a"], "/ready")[0] == 200)
        status, body = _get(ports["a"], "/ready")
        assert status == 200, body
        assert body["checks"]["partitions"]["detail"] == "1 assigned" and body["checks"]["model"]["ok"], body
        assert _probe(settings, ports["a"], "ready") == 0 and _probe(settings, ports["a"], "live") == 0

        # a second member with nothing to take is live but not ready (its partition count is 0)
        workers["b"] = _worker(settings, "b", ports["b"])
        _wait_for("b's probe server", lambda: _get(ports["b"], "/health")[0] == 200)
        time.sleep(12)  # the group settles (b joins; sticky assignment keeps the one partition on one member)
        answers = {name: _get(port, "/ready") for name, port in ports.items()}
        assert sorted(status for status, _ in answers.values()) == [200, 503], answers
        idle = next(body for status, body in answers.values() if status == 503)
        assert idle["checks"]["partitions"] == {"ok": False, "detail": "no transactions partition assigned"}, idle
        assert all(_get(port, "/health")[0] == 200 for port in ports.values())
        holder = next(name for name, (status, _) in answers.items() if status == 200)

        # Redis down: not ready (the reason says Redis), still live; back up: ready again
        os.kill(redis_process.pid, signal.SIGKILL)
        redis_process.wait()
        _status, body = _wait_for("not ready without Redis", lambda: (lambda r: r if r[0] == 503 else None)(
            _get(ports[holder], "/ready")), 30)
        assert body["checks"]["redis"]["ok"] is False and body["checks"]["kafka"]["ok"] is True, body
        assert body["checks"]["partitions"]["ok"] is True, body
        time.sleep(3)
        assert _get(ports[holder], "/ready")[0] == 503
        assert _get(ports[holder], "/health")[0] == 200, "a worker waiting out a Redis outage is alive"
        assert _probe(settings, ports[holder], "ready") == 1 and _probe(settings, ports[holder], "live") == 0
        redis_process = _start_redis(redis_port, tmp_path / "redis")
        _wait_for("ready again with Redis back", lambda: _get(ports[holder], "/ready")[0] == 200, 60)
        for worker in workers.values():
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers.values():
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        redis_process.kill()
        redis_process.wait()
