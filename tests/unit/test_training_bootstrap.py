"""`fraudstream bootstrap`: a first model from simulated history when the registry is empty, nothing otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.cli import run
from fraudstream.settings import RegistrySettings
from models.registry import ModelRegistry

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "train.yaml"


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in __import__("os").environ if n.startswith("FRAUD_")]:
        monkeypatch.delenv(name)
    registry = tmp_path / "registry"
    monkeypatch.setenv("FRAUD_REGISTRY__PATH", str(registry))
    if "signing_key" in RegistrySettings.model_fields:  # signed registries: the bootstrap signs like `train`
        monkeypatch.setenv("FRAUD_REGISTRY__SIGNING_KEY", "b" * 64)
    return registry


def test_a_registry_with_a_current_model_is_left_alone(registry_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry_env.mkdir()
    (registry_env / "current").write_text("v-existing\n")
    assert run(["bootstrap", "--days", "1"]) == 0
    assert "already has a current model (v-existing); nothing to do" in capsys.readouterr().out
    assert sorted(p.name for p in registry_env.iterdir()) == ["current"]


def test_a_bad_start_day_is_one_line(registry_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bootstrap", "--start", "01/02/2024"]) == 2
    assert "--start '01/02/2024' is not a date like 2024-01-01" in capsys.readouterr().err


@pytest.mark.slow
def test_an_empty_registry_gets_a_current_first_model(registry_env: Path, tmp_path: Path) -> None:
    args = ["bootstrap", "--customers", "400", "--merchants", "80", "--days", "28", "--config", str(DEMO_CONFIG),
            "--report-dir", str(tmp_path / "report")]
    assert run(args) == 0
    current = ModelRegistry(registry_env).current_version()
    assert current is not None
    assert (tmp_path / "report" / "report.md").is_file()
    assert run(args) == 0  # the second run is a no-op
    assert ModelRegistry(registry_env).current_version() == current
