"""The canonical transaction frame shared by the simulator, importer, publisher, trainer and backtests.

One row per transaction, the Transaction field names as columns, plus the label columns
is_fraud (int8 0/1) and fraud_scenario (int8; 0 legit, -1 fraud of unknown scenario; the answer key).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.contracts import Transaction
from fraudstream.errors import DataError, InputError

CANONICAL_COLUMNS: tuple[str, ...] = tuple(Transaction.model_fields)
LABEL_COLUMNS: tuple[str, ...] = ("is_fraud", "fraud_scenario")
ID_COLUMNS: tuple[str, ...] = ("transaction_id", "user_id", "merchant_id")
OPTIONAL_STRING_COLUMNS: tuple[str, ...] = ("merchant_category", "channel", "country", "device_id")
FLOAT_COLUMNS: tuple[str, ...] = ("amount", "latitude", "longitude")
SUFFIXES = (".parquet", ".csv")


def file_format(path: Path) -> str:
    """The suffix (.parquet or .csv); InputError for anything else."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: unknown file type '{suffix}'; use a .parquet or .csv file")
    return suffix


def readable_file_format(path: Path) -> str:
    """file_format of an input that must exist and be non-empty; InputError with one line otherwise."""
    suffix = file_format(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    return suffix


def _utc_timestamps(values: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    else:
        try:
            stamps = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where}: column timestamp is not ISO-8601 ({exc}); use `fraudstream import`") from None
    if stamps.isna().any():
        raise DataError(f"{where}: column timestamp has missing values; use `fraudstream import`")
    return stamps.dt.as_unit("ns")


def normalise_canonical(df: pd.DataFrame, *, where: str = "frame") -> pd.DataFrame:
    """The same rows with canonical dtypes and column order (labels kept when present)."""
    missing = [c for c in CANONICAL_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{where}: missing canonical column(s) {', '.join(missing)}; "
            "convert outside data with `fraudstream import` first"
        )
    has_labels = [c in df.columns for c in LABEL_COLUMNS]
    if any(has_labels) and not all(has_labels):
        raise DataError(f"{where}: has only one of the label columns {', '.join(LABEL_COLUMNS)}; give both or neither")
    df = df.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)
    for column in (*ID_COLUMNS, "currency", *OPTIONAL_STRING_COLUMNS):
        out[column] = df[column].astype("str")  # stays Arrow-backed: no Python object per value
    blank = [c for c in (*ID_COLUMNS, "currency") if out[c].isna().any()]
    if blank:
        raise DataError(f"{where}: column(s) {', '.join(blank)} have missing values; use `fraudstream import`")
    out["timestamp"] = _utc_timestamps(df["timestamp"], where).array
    for column in FLOAT_COLUMNS:
        try:
            out[column] = pd.to_numeric(df[column]).astype("float64")
        except (ValueError, TypeError):
            raise DataError(f"{where}: column {column} is not numeric; use `fraudstream import`") from None
    if all(has_labels):
        for column in LABEL_COLUMNS:
            out[column] = pd.to_numeric(df[column]).astype("int8")
    return out[[*CANONICAL_COLUMNS, *(LABEL_COLUMNS if all(has_labels) else ())]]


def read_canonical(path: str | Path, *, require_labels: bool = False) -> pd.DataFrame:
    """Read a canonical .parquet or .csv file; InputError with one line when it cannot be used."""
    path = Path(path)
    suffix = readable_file_format(path)
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={c: "str" for c in (*ID_COLUMNS, *OPTIONAL_STRING_COLUMNS, "currency")})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as {suffix[1:]} ({str(exc).splitlines()[0]})") from None
    if df.empty:
        raise DataError(f"{path}: has no rows")
    frame = normalise_canonical(df, where=str(path))
    if require_labels and not all(c in frame.columns for c in LABEL_COLUMNS):
        raise DataError(f"{path}: has no label columns {', '.join(LABEL_COLUMNS)}; this command needs labelled data")
    return frame


def write_canonical(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a canonical frame as Parquet or CSV (chosen by suffix); returns the path."""
    path = Path(path)
    suffix = file_format(path)
    frame = normalise_canonical(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        csv = frame.copy()
        csv["timestamp"] = csv["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        csv.to_csv(path, index=False, float_format="%.17g")
    return path


def _nullable(values: np.ndarray[Any, Any]) -> list[Any]:
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in values.tolist()]


def transaction_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain dicts with Transaction field names (None for missing, aware UTC datetimes)."""
    columns: dict[str, list[Any]] = {}
    for column in CANONICAL_COLUMNS:
        if column == "timestamp":
            columns[column] = [t.to_pydatetime() for t in df[column]]
        else:
            columns[column] = _nullable(df[column].to_numpy(dtype=object))
    stamps: list[datetime] = columns["timestamp"]
    return [
        {name: columns[name][i] for name in CANONICAL_COLUMNS} for i in range(len(stamps))
    ]


def frame_to_transactions(df: pd.DataFrame) -> Iterator[Transaction]:
    """Validate every row with the Transaction contract (slow path: pydantic per row)."""
    for record in transaction_records(df):
        yield Transaction.model_validate(record)
