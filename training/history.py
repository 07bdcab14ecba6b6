"""Reading the training history: the canonical frame (bankbus.frames), or the handbook's own column names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudstream.errors import DataError, InputError

HANDBOOK_MAPPING = {
    "TRANSACTION_ID": "transaction_id",
    "CUSTOMER_ID": "user_id",
    "TERMINAL_ID": "merchant_id",
    "TX_AMOUNT": "amount",
    "TX_DATETIME": "timestamp",
    "TX_FRAUD": "is_fraud",
}


def canonical_from_handbook(raw: pd.DataFrame) -> pd.DataFrame:
    """The handbook-sim columns renamed to the canonical ones (TX_FRAUD_SCENARIO, the answer key, is dropped)."""
    missing = [c for c in HANDBOOK_MAPPING if c not in raw.columns]
    if missing:
        raise DataError(f"handbook frame lacks column(s) {', '.join(missing)}")
    df = raw[list(HANDBOOK_MAPPING)].rename(columns=HANDBOOK_MAPPING)
    for col in ("transaction_id", "user_id", "merchant_id"):
        df[col] = df[col].astype(str)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["currency"] = "EUR"
    df["is_fraud"] = df["is_fraud"].astype(int)
    return df


def read_history(path: Path) -> pd.DataFrame:
    """A history file with labels: canonical columns (+ is_fraud), or the handbook's TX_* columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"history file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"history file {path} must be .parquet or .csv")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        columns = pq.read_schema(path).names
    else:
        columns = list(pd.read_csv(path, nrows=0).columns)
    if "TX_DATETIME" in columns:
        return canonical_from_handbook(pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path))
    from bankbus.frames import read_canonical

    df = read_canonical(path, require_labels=True)
    if "is_fraud" not in df.columns:
        raise DataError(f"history file {path} has no is_fraud column; training needs labels")
    return df
