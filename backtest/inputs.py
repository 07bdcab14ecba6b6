"""Backtest input: a history file, or a folder of transactions_*.parquet (handbook-sim layout), as one canonical frame.

The handbook format is recognised from its columns; other formats go through the importer's column mapping.
Rows are deduplicated on transaction_id and sorted by event time (stable), so every path sees the same stream.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bankbus.topic_history import History
from fraudstream.errors import DataError, InputError

if TYPE_CHECKING:
    from bankbus.importer import ColumnMapping

HANDBOOK_MARKERS = ("TX_DATETIME", "TERMINAL_ID", "CUSTOMER_ID", "TX_AMOUNT")
FOLDER_GLOB = "transactions_*.parquet"


def history_files(path: Path) -> list[Path]:
    """The file itself, or every transactions_*.parquet of a folder in name order."""
    if path.is_dir():
        files = sorted(path.glob(FOLDER_GLOB))
        if not files:
            raise InputError(f"{path}: folder has no {FOLDER_GLOB} files (expected the handbook-sim layout)")
        return files
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    return [path]


def _read_raw(files: list[Path]) -> tuple[pd.DataFrame, list[set[str]]]:
    """The files concatenated (union of columns) and each file's own column set."""
    from bankbus.importer import read_source

    frames = [read_source(f) for f in files]
    columns = [set(map(str, frame.columns)) for frame in frames]
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), columns


def load_history(
    path: Path,
    *,
    fmt: str | None = None,
    mapping_file: Path | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> History:
    """Read, map (handbook auto-detected), validate, dedup, sort and cut to [start, end)."""
    from dataclasses import replace

    from bankbus.importer import FORMATS, ColumnMapping, import_frame

    files = history_files(path)
    raw, file_columns = _read_raw(files)
    if fmt is None and mapping_file is None and all(c in raw.columns for c in HANDBOOK_MARKERS):
        fmt = "handbook"
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format '{fmt}' is unknown; built-in formats: {', '.join(FORMATS)}")
    if fmt is None and mapping_file is None:
        mapping = ColumnMapping(columns={c: c for c in _canonical_present(raw)})
    else:
        mapping = FORMATS[fmt] if fmt else ColumnMapping()
        if mapping_file is not None:
            loaded = ColumnMapping.from_file(mapping_file)
            mapping = replace(loaded, columns={**mapping.columns, **loaded.columns})
    mapping = _usable_mapping(mapping, files, file_columns)
    result = import_frame(raw, mapping, where=str(path))
    frame = result.frame
    if "is_fraud" not in frame.columns or frame["is_fraud"].isna().all():
        raise DataError(f"{path}: has no labels (is_fraud); a backtest needs them to score its alerts")
    frame = frame.assign(is_fraud=frame["is_fraud"].fillna(0).astype("int8"))
    before = len(frame)
    frame = frame.drop_duplicates(subset="transaction_id", keep="first")
    duplicates = before - len(frame)
    frame = _cut(frame, start, end)
    if frame.empty:
        raise InputError(f"{path}: no transactions in the range {_range_text(start, end)}")
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return History(frame, str(path), duplicates, len(result.rejects))


def _usable_mapping(mapping: ColumnMapping, files: list[Path], file_columns: list[set[str]]) -> ColumnMapping:
    """The answer key (fraud_scenario) is optional; every other mapped column must be in every file."""
    from dataclasses import replace

    everywhere = set.intersection(*file_columns)
    columns = {k: v for k, v in mapping.columns.items() if k != "fraud_scenario" or v in everywhere}
    for f, have in zip(files, file_columns, strict=True):
        absent = sorted(v for v in columns.values() if v not in have)
        if absent:
            raise DataError(f"{f}: lacks column(s) {', '.join(absent)} that the other input files have")
    return replace(mapping, columns=columns)


def _canonical_present(raw: pd.DataFrame) -> list[str]:
    from bankbus.importer import KNOWN

    found = [c for c in KNOWN if c in raw.columns]
    if "timestamp" not in found:
        raise InputError(
            "input columns are neither canonical nor the handbook's; give --format or --map "
            f"(columns: {', '.join(map(str, raw.columns[:12]))})"
        )
    return found


def _cut(frame: pd.DataFrame, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame["timestamp"] >= pd.Timestamp(start)
    if end is not None:
        keep &= frame["timestamp"] < pd.Timestamp(end)
    return frame[keep]


def _range_text(start: datetime | None, end: datetime | None) -> str:
    return f"[{start or 'beginning'}, {end or 'end'})"
