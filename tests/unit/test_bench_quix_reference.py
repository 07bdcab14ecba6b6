"""The quix-streams reference pipeline stays out of the project: its own pinned venv, no fraudstream import."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench import quix_run
from bench.e2e import engine_over_reference
from bench.report import goals
from fraudstream.errors import InfraError

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


def _requirement_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in quix_run.REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_every_quix_requirement_is_pinned_with_double_equals() -> None:
    lines = _requirement_lines()
    assert "quixstreams==3.28.1" in lines
    assert [line for line in lines if not PIN.match(line)] == []
    names = [_name(line) for line in lines]
    assert len(names) == len(set(names))
    assert {"confluent-kafka", "pydantic", "rocksdict", "numpy"} <= set(names)  # the transitive ones too


def test_quixstreams_is_in_no_dependency_that_setup_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    setup = (REPO / "scripts" / "setup.sh").read_text()
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', setup)
    assert extras is not None, "scripts/setup.sh no longer installs -e .[extras]; update this test"
    installed = list(project["dependencies"])
    for extra in extras.group(1).split(","):
        installed += project["optional-dependencies"][extra]
    assert "quixstreams" not in {_name(r) for r in installed}
    for lock in (REPO / "requirements").glob("*.txt"):
        assert not re.search(r"^quixstreams\b", lock.read_text(), re.MULTILINE), lock


def test_the_app_imports_nothing_of_fraudstream() -> None:
    tree = ast.parse(quix_run.APP.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import would reach into the project"
            imported.add((node.module or "").split(".")[0])
    assert "quixstreams" in imported
    project_packages = {"fraudstream", "features", "state", "streamer", "models", "training", "bankbus", "backtest",
                        "bench", "console", "api"}
    assert imported & project_packages == set()


def test_a_failed_venv_build_is_one_line_and_leaves_no_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("quixstreams==3.28.1\n")
    calls: list[list[str]] = []

    def fake_run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if "pip" in command:
            return subprocess.CompletedProcess(command, 1, "", "Collecting x\nERROR: No matching distribution")
        (Path(command[-1]) / "bin").mkdir(parents=True)
        (Path(command[-1]) / "bin" / "python").write_text("")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(quix_run.subprocess, "run", fake_run)
    venv = tmp_path / "quix-venv"
    with pytest.raises(InfraError) as info:
        quix_run.ensure_venv(venv, requirements, say=lambda _: None)
    message = str(info.value)
    assert "\n" not in message and "No matching distribution" in message and "--no-quix" in message
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
    assert list(tmp_path.iterdir()) == [requirements]  # neither the venv nor its half-built staging folder


def test_a_built_venv_is_reused_until_the_requirements_change(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("quixstreams==3.28.1\n")
    venv = tmp_path / "quix-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / quix_run.MARKER).write_text(quix_run.requirements_digest(requirements) + "\n")
    built: list[list[str]] = []
    monkeypatch.setattr(quix_run.subprocess, "run", lambda c, **_: built.append(c) or
                        subprocess.CompletedProcess(c, 1, "", "offline"))
    assert quix_run.ensure_venv(venv, requirements, say=lambda _: None) == venv / "bin" / "python"
    assert built == []
    requirements.write_text("quixstreams==3.28.1\nnumpy==2.4.6\n")
    with pytest.raises(InfraError):
        quix_run.ensure_venv(venv, requirements, say=lambda _: None)
    assert built


def test_engine_over_reference_and_its_goal() -> None:
    runs = [{"engine": "kafka", "mode": "max", "events_per_s": 9000.0},
            {"engine": "kafka", "mode": "50pct", "events_per_s": None},
            {"engine": "kafka (at least once)", "mode": "max", "events_per_s": 12000.0},
            {"engine": quix_run.NAME, "mode": "max", "events_per_s": 6000.0}]
    over = engine_over_reference(runs)
    assert over == {"kafka": 1.5, "kafka (at least once)": 2.0}
    assert engine_over_reference(runs[:3]) == {}
    rows = {g["goal"]: g for g in goals({"runs": [], "engine_over_quix": over})}
    assert rows["kafka engine / quix reference"]["met"] is False
    assert rows["kafka (at least once) engine / quix reference"]["met"] is True
