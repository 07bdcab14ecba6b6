"""The committed JSON Schema files of the wire contracts, and the check that they have not drifted."""

from __future__ import annotations

import json
from pathlib import Path

from fraudstream.contracts import CONTRACTS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def _render(name: str) -> str:
    return json.dumps(CONTRACTS[name].model_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema_files(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(CONTRACTS):
        path = directory / f"{name}.schema.json"
        path.write_text(_render(name))
        written.append(path)
    return written


def check_schema_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the contracts whose committed file is missing or differs."""
    stale = []
    for name in sorted(CONTRACTS):
        path = directory / f"{name}.schema.json"
        if not path.exists() or path.read_text() != _render(name):
            stale.append(name)
    return stale
