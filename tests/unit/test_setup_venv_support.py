"""setup.sh's python3.11-venv step on a machine without it: a fake Python that lacks ensurepip until a fake apt-get
has installed the package; the step installs it and goes on, or says what to run when it cannot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in
  *"import ensurepip"*) [ -f "{marker}" ] ;;
  *version_info*) echo 3.11 ;;
  *) exit 2 ;;
esac
"""
FAKE_APT = """#!/usr/bin/env bash
echo "$*" >> "{calls}"
case "$*" in *install*) touch "{marker}" ;; esac
"""


def _machine(tmp_path: Path, uid: int) -> tuple[Path, dict[str, str], Path, Path]:
    bin_dir, marker, calls = tmp_path / "bin", tmp_path / "venv-installed", tmp_path / "apt-calls"
    bin_dir.mkdir()
    for name, text in (("python3.11", FAKE_PYTHON), ("apt-get", FAKE_APT), ("id", f"#!/bin/sh\necho {uid}\n")):
        (bin_dir / name).write_text(text.format(marker=marker, calls=calls))
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return bin_dir / "python3.11", env, marker, calls


def _run(python: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "scripts/venv_support.sh", str(python)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_setup_installs_python3_11_venv_when_it_is_missing(tmp_path: Path) -> None:
    python, env, marker, calls = _machine(tmp_path, uid=0)
    done = _run(python, env)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq python3.11-venv"]
    assert marker.exists()
    assert "setup: installing python3.11-venv" in done.stdout and "python3.11-venv installed" in done.stdout
    again = _run(python, env)  # present now: nothing to do
    assert again.returncode == 0 and again.stdout == "" and len(calls.read_text().splitlines()) == 2


def test_without_root_it_says_what_to_install(tmp_path: Path) -> None:
    python, env, marker, calls = _machine(tmp_path, uid=1000)
    done = _run(python, env)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"setup: {python} cannot create virtualenvs: the package python3.11-venv is "
                                   "missing; install it (as root: apt-get install python3.11-venv)")
    assert not calls.exists() and not marker.exists()


def test_setup_runs_the_step_before_creating_the_virtualenv_and_pip_shows_its_downloads() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    step, create = setup.index('bash scripts/venv_support.sh "$PY"'), setup.index('"$PY" -m venv "$VENV"')
    assert step < create
    assert "bash scripts/pip_progress.sh" in setup and "pip install -q -c" not in setup
