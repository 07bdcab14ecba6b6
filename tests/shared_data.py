"""Locating ../shared: tests that need it skip with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def handbook_dir() -> Path:
    folder = SHARED / "datasets" / "handbook-sim"
    if not any(folder.glob("transactions_*.parquet")):
        pytest.skip(f"handbook-sim data set not found at {folder} (../shared is absent on this machine)")
    return folder
