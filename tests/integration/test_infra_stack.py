"""`fraudstream up/down/status` against real processes, on ports of their own (not the shared test stack)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (other suites may run beside this one)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _env(tmp_path: Path, kafka: int, controller: int, redis: int) -> dict[str, str]:
    return {
        "FRAUD_EMBEDDED__STATE_DIR": str(tmp_path / "state"),
        "FRAUD_EMBEDDED__KAFKA_PORT": str(kafka),
        "FRAUD_EMBEDDED__CONTROLLER_PORT": str(controller),
        "FRAUD_EMBEDDED__REDIS_PORT": str(redis),
        "FRAUD_TOPICS__PARTITIONS": "2",
    }


def test_up_twice_status_down_lifecycle(tmp_path: Path, stack_settings: object) -> None:
    # stack_settings first: the Kafka jars are resolved once into the shared test stack; reuse is by pom digest.
    kafka, controller, redis = _free_ports(3)
    env = _env(tmp_path, kafka, controller, redis)
    try:
        first = run_cli("up", env=env)
        assert first.code == 0, first.err
        assert f"started embedded broker on 127.0.0.1:{kafka}" in first.out
        assert f"started redis-server on 127.0.0.1:{redis}" in first.out
        assert "topic transactions: created" in first.out

        second = run_cli("up", env=env)
        assert second.code == 0, second.err
        assert "already running" in second.out
        assert "topic transactions: exists" in second.out
        assert "started" not in second.out

        healthy = run_cli("status", env=env)
        assert healthy.code == 0
        assert f"kafka: answering on 127.0.0.1:{kafka}" in healthy.out
        assert (tmp_path / "state" / "kafka" / "kafka.pid").exists()
    finally:
        stopped = run_cli("down", env=env)
    assert stopped.code == 0
    assert "kafka: stopped" in stopped.out and "redis: stopped" in stopped.out
    assert not (tmp_path / "state" / "kafka" / "kafka.pid").exists()

    after = run_cli("status", env=env)
    assert after.code == 69
    assert "NOT answering" in after.out

    again = run_cli("down", env=env)
    assert again.code == 0
    assert "nothing of ours to stop" in again.out


def test_taken_port_gives_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = _env(tmp_path, *_free_ports(2), port)
        env["FRAUD_KAFKA__BOOTSTRAP_SERVERS"] = "127.0.0.1:29092"  # only redis is embedded here
        result = run_cli("up", env=env)
    assert result.code == 69
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert f"port {port} on 127.0.0.1 is already taken" in lines[0]
    assert "FRAUD_EMBEDDED__REDIS_PORT" in lines[0]
    assert not (tmp_path / "state" / "redis" / "redis.pid").exists()


def test_unreachable_external_broker_starts_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path, *_free_ports(3))
    env["FRAUD_KAFKA__BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    env["FRAUD_REDIS__URL"] = "redis://127.0.0.1:2/0"
    env["FRAUD_EMBEDDED__START_TIMEOUT_S"] = "3"
    result = run_cli("up", env=env)
    assert result.code == 69
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "cannot reach Kafka at 127.0.0.1:1" in lines[0]
    assert "nothing started" in result.out
    assert not (tmp_path / "state").exists()

    status = run_cli("status", env=env)
    assert status.code == 69
    assert "kafka: external 127.0.0.1:1" in status.out
    assert "NOT answering" in status.out
