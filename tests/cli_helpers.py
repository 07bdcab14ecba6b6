"""Run the real `fraudstream` command line in a subprocess, with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300.0) -> CliResult:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    base.update(env or {})
    if "FRAUD_REGISTRY__SIGNING_KEY" not in base:  # the tests' registries are unsigned (development)
        base.setdefault("FRAUD_REGISTRY__ALLOW_UNSIGNED", "true")
    proc = subprocess.run(
        [sys.executable, "-m", "fraudstream", *args],
        cwd=REPO, env=base, capture_output=True, text=True, timeout=timeout, check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
