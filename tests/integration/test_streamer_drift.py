"""Drift in a real stream: `fraudstream stream` (kafka engine, real broker and Redis) on 12 hours of transactions
whose amounts are six times larger from hour 8 on. The drift gauges appear on /metrics, and the drift topic gets one
record per closed hour: the steady hours below the PSI threshold, the shifted ones above it with `retrain: true`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from tests.drift_support import hourly_frame, publish_watched_tiny_model, transactions_of
from tests.fault_support import free_port
from tests.streamer_kafka_support import isolated_settings, publish, read_all, wait_until
from tests.streamer_process import REPO, env_for

pytestmark = pytest.mark.integration


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def _gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_a_shifted_amount_distribution_crosses_the_psi_threshold(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    version, _reference = publish_watched_tiny_model(tmp_path / "registry")
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry", partitions=3)
    publish(settings, transactions_of(hourly_frame(7, shift_from_hour=8)))
    port = free_port()
    env = {**env_for(settings), "FRAUD_STREAMER__METRICS_PORT": str(port), "FRAUD_DRIFT__MIN_HOUR_EVENTS": "100"}
    command = [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--instance-id", "drift",
               "--from", "earliest"]  # fmt: skip
    worker = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # 12 hours of events, a grace period of 1 h: hours 0..9 close
        wait_until(lambda: (_gauge(_metrics(port), "fraudstream_drift_hours_total") or 0) >= 10, 180, "10 hours")
        text = _metrics(port)
        assert _gauge(text, "fraudstream_drift_watched") == 1.0
        assert (_gauge(text, "fraudstream_drift_retrain_hours_total") or 0) >= 2
        amount_psi = _gauge(text, 'fraudstream_drift_psi{kind="feature",name="amount"}')
        assert amount_psi is not None and amount_psi > 0.2, text  # the last closed hour is a shifted one
        assert _gauge(text, 'fraudstream_drift_psi{kind="score",name="stack"}') is not None
        assert _gauge(text, "fraudstream_drift_alert_rate") is not None
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _out, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            _out, err = worker.communicate()
    records = sorted((json.loads(m.value()) for m in read_all(settings, settings.topics.drift)),
                     key=lambda r: r["hour_start_unix"])  # fmt: skip
    assert [r["hour"][11:16] for r in records] == [f"{h:02d}:00" for h in range(10)], records
    assert all(r["model_version"] == version and r["events"] > 300 for r in records)
    steady, shifted = records[2:8], records[8:]  # hours 0-1: the features' windows are still filling
    assert all(not r["retrain"] and r["psi_features"]["amount"] < 0.1 for r in steady), steady
    assert all(r["retrain"] and r["psi_features"]["amount"] > 0.2 and r["psi_score"] > 0.2 for r in shifted), shifted
    assert all(r["retrain_command"].startswith("fraudstream train --from-topics --start ") for r in shifted)
    assert sum("drift: hour 2024-03-01T08:00" in line for line in err.splitlines()) == 1, err[-3000:]


def test_the_faust_engine_exports_the_same_drift(stack_settings: Settings, unique_name: str, tmp_path: Path) -> None:
    from fraudstream.infra.topics import ensure_topics
    from tests.faust_support import isolated_settings as faust_settings
    from tests.faust_support import start_worker

    version, _reference = publish_watched_tiny_model(tmp_path / "registry")
    settings = faust_settings(stack_settings, unique_name, tmp_path / "registry").with_overrides(
        drift={"min_hour_events": 100}
    )
    ensure_topics(settings)
    publish(settings, transactions_of(hourly_frame(7, shift_from_hour=8)))
    worker = start_worker(settings, tmp_path / "faust.log")
    try:
        port = worker.web_port  # faust's web server serves /metrics
        wait_until(lambda: (_gauge(_metrics(port), "fraudstream_drift_hours_total") or 0) >= 10, 240, "10 hours")
        text = _metrics(port)
        assert _gauge(text, "fraudstream_drift_watched") == 1.0
        assert (_gauge(text, "fraudstream_drift_retrain_hours_total") or 0) >= 2
    finally:
        worker.stop()
    records = sorted((json.loads(m.value()) for m in read_all(settings, settings.topics.drift)),
                     key=lambda r: r["hour_start_unix"])  # fmt: skip
    assert [r["hour"][11:13] for r in records] == [f"{h:02d}" for h in range(10)], records
    assert [r["retrain"] for r in records[2:]] == [False] * 6 + [True] * 2
    assert all(r["model_version"] == version for r in records)
