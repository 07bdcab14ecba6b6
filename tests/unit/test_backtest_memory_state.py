"""The fast replay on the in-memory store: no Redis at all, the same report; --state is refused where it cannot
apply, with one line and exit 2. (Equal to the Redis store score for score: tests/integration/test_backtest.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.job import run_backtest
from backtest.runner import BacktestOptions
from fraudstream.errors import ConfigError
from fraudstream.settings import build_settings
from tests.cli_helpers import run_cli
from tests.streamer_support import publish_tiny_model


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bankbus.frames import write_canonical
    from bankbus.simulator import SimulationConfig, simulate_frame

    frame = simulate_frame(SimulationConfig(customers=40, merchants=20, days=4, seed=3))
    big = np.arange(len(frame)) % 30 == 5
    frame.loc[big, "amount"] = 4000.0
    frame.loc[big, "is_fraud"] = 1
    return write_canonical(frame, tmp_path_factory.mktemp("bt-mem") / "history.parquet")


def _options(tmp_path: Path, history: Path, *, fast: bool = True, state: str = "memory") -> BacktestOptions:
    registry = tmp_path / "registry"
    version = publish_tiny_model(registry, threshold=0.5)
    return BacktestOptions(report_dir=tmp_path / "report", history=history, model=version, registry=registry,
                           label_delay_days=1.0, fast=fast, state=state, batch_size=300, partitions=3)  # fmt: skip


def test_memory_state_replays_without_any_redis(tmp_path: Path, history_file: Path) -> None:
    # nothing listens on port 1: a Redis call anywhere in the run would fail it
    settings = build_settings({"redis": {"url": "redis://127.0.0.1:1/0"}, "streamer": {"scorer": "stack"},
                               "registry": {"allow_unsigned": True}}, environ={})  # fmt: skip
    report, _ = run_backtest(settings, _options(tmp_path, history_file))
    assert report["coverage"]["missing"] == 0 and report["coverage"]["assessed"] > 0
    assert report["replay"][0]["events"] > 0 and report["replay"][0]["labels"] > 0
    assert report["replay"][0]["state"] == report["run"]["state"] == "memory"
    assert report["run"]["cleanup"]["redis_keys"] == 0 and report["run"]["redis_namespace"] is None
    assert (tmp_path / "report" / "scores.parquet").exists()


def test_memory_state_without_fast_is_refused_before_anything_runs(tmp_path: Path, history_file: Path) -> None:
    settings = build_settings({"redis": {"url": "redis://127.0.0.1:1/0"}}, environ={})
    with pytest.raises(ConfigError, match="--state memory needs --fast"):
        run_backtest(settings, _options(tmp_path, history_file, fast=False))


@pytest.mark.parametrize(("args", "says"), [
    (("--state", "memory"), "--state memory needs --fast"),
    (("--fast", "--state", "disk"), "--state must be redis or memory (got 'disk')"),
])  # fmt: skip
def test_the_cli_refuses_a_state_it_cannot_use_in_one_line(history_file: Path, args: tuple[str, ...],
                                                           says: str) -> None:  # fmt: skip
    result = run_cli("backtest", "--history", str(history_file), "--model", "current", *args, timeout=120)
    assert result.code == 2, result
    assert says in result.err and "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
