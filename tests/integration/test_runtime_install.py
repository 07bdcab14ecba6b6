"""`pip install .` without extras (what the streamer image holds) gives a working `fraudstream stream` with no
TensorFlow, `python -m bench --help` runs from the installed package outside the checkout, and a command that needs
the [train] extra says so in one line. Builds a fresh virtualenv from requirements/runtime.txt (PyPI or pip's
cache): a few minutes, so it is marked full (CI runs it, `make test-fast` does not)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.settings import Settings
from tests.streamer_kafka_support import isolated_settings, publish
from tests.streamer_process import REPO, env_for
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.slow]


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_runtime_alone_streams_without_tensorflow(stack_settings: Settings, unique_name: str,
                                                     tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    installed = _run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO / "requirements" / "runtime.txt"),
                      str(REPO)], tmp_path, timeout=1200)
    assert installed.returncode == 0, installed.stderr[-2000:]
    python, fraudstream = str(venv / "bin" / "python"), str(venv / "bin" / "fraudstream")

    probe = "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in %r}))"
    modules = ["tensorflow", "keras", "faust", "matplotlib", "imblearn", "pytest", "fraudstream", "streamer", "bench"]
    found = json.loads(_run([python, "-c", probe % modules], tmp_path).stdout)
    assert found == {m: m in ("fraudstream", "streamer", "bench") for m in modules}

    publish_tiny_model(tmp_path / "registry")
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry", partitions=2)
    txns = simulated_transactions(customers=40, merchants=30, days=1, seed=9)[:150]
    publish(settings, txns)
    streamed = _run([fraudstream, "stream", "--engine", "kafka", "--idle-exit", "5", "--instance-id", "lean",
                     "--from", "earliest"], tmp_path, env=env_for(settings))
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    summary = json.loads(streamed.stdout.strip().splitlines()[-1])
    assert summary["events"] == len(txns)

    assert _run([python, "-m", "bench", "--help"], tmp_path).returncode == 0  # outside the checkout

    history = tmp_path / "history.csv"
    simulated = _run([fraudstream, "simulate", "--out", str(history), "--customers", "100", "--merchants", "60",
                      "--days", "30"], tmp_path)
    assert simulated.returncode == 0, simulated.stderr[-1000:]
    trained = _run([fraudstream, "train", "--history", str(history), "--no-publish", "--config",
                    str(REPO / "deploy" / "demo" / "train.yaml"), "--report-dir", str(tmp_path / "report")], tmp_path)
    assert trained.returncode == 2, trained.stderr[-1000:]
    assert "this command needs the [train] extra" in trained.stderr.strip().splitlines()[-1]
