"""The lock files (scripts/lock.sh) pin every direct dependency of pyproject.toml at the version pyproject pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = _PIN.match(line.strip())
        if match:
            found[normalise(match.group(1))] = match.group(3)
    return found


def lock(name: str) -> dict[str, str]:
    return pins((LOCKS / name).read_text().splitlines())


def project() -> dict[str, list[str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"runtime": list(data["dependencies"])}
    groups.update(data.get("optional-dependencies", {}))
    return groups


def _own(requirement: str) -> bool:
    return normalise(requirement.split("[")[0]) == "fraudstream"


def test_every_direct_dependency_is_pinned_exactly() -> None:
    loose = [r for group in project().values() for r in group if not _own(r) and not _PIN.match(r)]
    assert loose == [], "pin these with == in pyproject.toml, then run scripts/lock.sh"


@pytest.mark.parametrize(
    ("lock_file", "groups"),
    [("dev.txt", ("runtime", "train", "faust", "bench", "dev")), ("runtime.txt", ("runtime",)),
     ("train.txt", ("runtime", "train")), ("gpu.txt", ("runtime", "gpu"))],
)
def test_the_lock_pins_each_direct_dependency_at_pyprojects_version(lock_file: str, groups: tuple[str, ...]) -> None:
    locked = lock(lock_file)
    wanted = pins([r for g in groups for r in project()[g] if not _own(r)])
    differ = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert differ == {}, f"requirements/{lock_file} is stale (pyproject, lock): run scripts/lock.sh and commit"


def test_the_three_locks_agree_and_the_runtime_has_no_training_stack() -> None:
    dev, runtime, train = lock("dev.txt"), lock("runtime.txt"), lock("train.txt")
    assert len(dev) > len(train) > len(runtime) > 20
    for name, version in {**runtime, **train}.items():
        assert dev[name] == version, name
    training_only = {normalise(r.split("==")[0]) for r in project()["train"]} | {"tensorflow"}
    assert not training_only & set(runtime)
    assert not {"faust-streaming", "pytest", "ruff", "mypy"} & set(runtime) | ({"pytest"} & set(train))


def test_the_gpu_lock_agrees_and_never_shares_an_environment_with_the_cpu_onnxruntime() -> None:
    """onnxruntime-gpu and onnxruntime install the same module: dev.txt has the CPU build, gpu.txt the CUDA one."""
    dev, gpu = lock("dev.txt"), lock("gpu.txt")
    assert {name: version for name, version in gpu.items() if name in dev and dev[name] != version} == {}
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu
    assert "onnxruntime" in dev and "onnxruntime-gpu" not in dev and "onnxruntime" not in lock("runtime.txt")


def test_the_pin_parser() -> None:
    assert pins(["psycopg[binary]==3.3.9", "numpy==2.4.6 ; python_version >= '3.11'", "    # via x", "-e ."]) == {
        "psycopg": "3.3.9", "numpy": "2.4.6"}
