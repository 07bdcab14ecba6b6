"""Import outside CSV/Parquet data into the canonical frame through a column mapping; bad rows go to a rejects file.

The handbook-sim format is built in (HANDBOOK). Other formats: `--col canonical=source` flags or a small YAML/JSON
mapping file with keys `columns`, `defaults`, `timezone`, `timestamp_unit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bankbus.frames import CANONICAL_COLUMNS, LABEL_COLUMNS, file_format, readable_file_format, write_canonical
from bankbus.validation import clean
from fraudstream.errors import DataError, InputError

REQUIRED = ("transaction_id", "user_id", "timestamp", "amount", "merchant_id")
KNOWN = (*CANONICAL_COLUMNS, *LABEL_COLUMNS)
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class ColumnMapping:
    """canonical column -> source column, constant defaults, and how to read naive or numeric timestamps."""

    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    timestamp_unit: str | None = None

    def check(self) -> None:
        unknown = sorted(set(self.columns) - set(KNOWN)) + sorted(set(self.defaults) - set(KNOWN))
        if unknown:
            raise InputError(
                f"mapping names unknown canonical column(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}"
            )
        missing = [c for c in REQUIRED if c not in self.columns and c not in self.defaults]
        if missing:
            raise InputError(f"mapping gives no source column for {', '.join(missing)}; add --col {missing[0]}=SOURCE")
        if self.timestamp_unit is not None and self.timestamp_unit not in TIMESTAMP_UNITS:
            raise InputError(f"timestamp_unit '{self.timestamp_unit}' is not one of {', '.join(TIMESTAMP_UNITS)}")

    def with_pairs(self, pairs: Iterable[str]) -> ColumnMapping:
        """This mapping with `canonical=source` pairs added (they win)."""
        columns = dict(self.columns)
        for pair in pairs:
            name, sep, source = pair.partition("=")
            if not sep or not name.strip() or not source.strip():
                raise InputError(f"--col '{pair}' is not CANONICAL=SOURCE (example: --col transaction_id=TX_ID)")
            columns[name.strip()] = source.strip()
        return replace(self, columns=columns)

    @classmethod
    def from_file(cls, path: Path) -> ColumnMapping:
        if not path.is_file():
            raise InputError(f"{path}: no such mapping file")
        import yaml

        try:
            text = path.read_text()
            data: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, OSError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: not a readable mapping ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict) or not isinstance(data.get("columns", {}), dict):
            raise InputError(f"{path}: expected a mapping with a 'columns' table (canonical: source)")
        extra = set(data) - {"columns", "defaults", "timezone", "timestamp_unit"}
        if extra:
            raise InputError(f"{path}: unknown key(s) {', '.join(sorted(extra))}")
        return cls(
            columns={str(k): str(v) for k, v in (data.get("columns") or {}).items()},
            defaults={str(k): str(v) for k, v in (data.get("defaults") or {}).items()},
            timezone=str(data.get("timezone", "UTC")),
            timestamp_unit=data.get("timestamp_unit"),
        )


HANDBOOK = ColumnMapping(
    columns={
        "transaction_id": "TRANSACTION_ID", "timestamp": "TX_DATETIME", "user_id": "CUSTOMER_ID",
        "merchant_id": "TERMINAL_ID", "amount": "TX_AMOUNT", "is_fraud": "TX_FRAUD",
        "fraud_scenario": "TX_FRAUD_SCENARIO",
    },
    timezone="UTC",
)
FORMATS = {"handbook": HANDBOOK}


@dataclass
class ImportResult:
    frame: pd.DataFrame  # accepted rows, canonical, in event-time order
    rejects: pd.DataFrame  # rejected source rows with source_row and reject_reason
    source_rows: int


def read_source(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A CSV (read as text) or Parquet file; InputError with one line when missing, empty or unreadable."""
    suffix = readable_file_format(path)
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype="str", keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot be read as {suffix[1:]} ({str(exc).splitlines()[0]})") from None
    if df.empty:
        raise DataError(f"{path}: has no rows")
    return df


def import_frame(source: pd.DataFrame, mapping: ColumnMapping, where: str = "source") -> ImportResult:
    """Map, validate (vectorised) and split a source frame into accepted canonical rows and rejects."""
    mapping.check()
    absent = [f"{source_name} (for {name})" for name, source_name in mapping.columns.items()
              if source_name not in source.columns]
    if absent:
        columns = ", ".join(map(str, source.columns))
        raise DataError(f"{where}: has no column {', '.join(absent)}; its columns are {columns}")
    raw = {name: source[source_name] for name, source_name in mapping.columns.items()}
    frame, reasons = clean(raw, len(source), defaults=mapping.defaults, timezone=mapping.timezone,
                           timestamp_unit=mapping.timestamp_unit)
    bad = ~pd.isna(reasons)
    rejects = source.reset_index(drop=True)[bad].copy()
    rejects.insert(0, "reject_reason", reasons[bad])
    rejects.insert(0, "source_row", rejects.index)
    accepted = frame[~bad].sort_values("timestamp", kind="stable").reset_index(drop=True)
    return ImportResult(accepted, rejects.reset_index(drop=True), len(source))


def import_file(src: Path, out: Path, mapping: ColumnMapping, rejects_path: Path | None = None) -> ImportResult:
    """Import `src` into the canonical file `out`; rejected rows go to `rejects_path` (default OUT.rejects.csv)."""
    file_format(out)
    result = import_frame(read_source(src), mapping, where=str(src))
    if len(result.rejects):
        target = rejects_path_for(out, rejects_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() == ".parquet":
            result.rejects.astype("str").to_parquet(target, index=False)
        else:
            result.rejects.to_csv(target, index=False)
    if result.frame.empty:
        first = result.rejects["reject_reason"].iloc[0]
        raise DataError(f"{src}: all {result.source_rows:,} rows were rejected (first reason: {first})")
    write_canonical(result.frame, out)
    return result


def rejects_path_for(out: Path, rejects: Path | None) -> Path:
    return rejects or out.with_name(out.stem + ".rejects.csv")
