"""A long-running command with one dependency down and the other up, against the real test broker."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from tests.cli_helpers import run_cli
from tests.streamer_support import publish_tiny_model

pytestmark = pytest.mark.integration

DOWN_REDIS = "redis://127.0.0.1:1/0"


def test_stream_with_redis_down_says_so_at_once_and_stops_at_idle_exit(stack_settings: Settings,
                                                                       tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    publish_tiny_model(registry)  # the current version is verified first (before any dependency is waited for)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update({
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": stack_settings.bootstrap_servers,
        "FRAUD_REDIS__URL": DOWN_REDIS,
        "FRAUD_REGISTRY__PATH": str(registry),
        "FRAUD_REGISTRY__ALLOW_UNSIGNED": "true",
        "FRAUD_STREAMER__METRICS_PORT": "0",
    })
    began = time.perf_counter()
    result = run_cli("stream", "--idle-exit", "3", env=env, timeout=120)
    elapsed = time.perf_counter() - began
    assert result.code == 69, result.err
    assert "Traceback" not in result.err + result.out
    warnings = [line for line in result.err.splitlines() if "WARNING" in line and "does not answer" in line]
    assert len(warnings) == 1 and f"Redis at {DOWN_REDIS} does not answer" in warnings[0], result.err
    assert "retrying after 0.5 s, doubling up to every" in warnings[0]
    assert "giving up after 3 s (--idle-exit)" in warnings[0]
    errors = [line for line in result.err.splitlines() if line.startswith("fraudstream: error: ")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith(f"fraudstream: error: Redis at {DOWN_REDIS} did not answer within 3 s")
    assert "FRAUD_REDIS__URL" in errors[0] and "Kafka" not in errors[0]
    assert elapsed < 30, f"gave up after {elapsed:.1f} s"
