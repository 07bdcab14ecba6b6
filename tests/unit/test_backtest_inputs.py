"""Backtest input: a handbook-sim-like folder (files concatenated, format detected), errors as one line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from backtest.inputs import load_history
from fraudstream.errors import InputError


def _handbook(start: str, n: int, first_id: int, scenario: bool = True) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="7h")
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": range(first_id, first_id + n),
            "TX_DATETIME": ts,  # naive, read as UTC
            "CUSTOMER_ID": [i % 5 for i in range(n)],
            "TERMINAL_ID": [i % 3 for i in range(n)],
            "TX_AMOUNT": [10.0 + i for i in range(n)],
            "TX_TIME_SECONDS": range(n),
            "TX_TIME_DAYS": range(n),
            "TX_FRAUD": [int(i % 4 == 0) for i in range(n)],
        }
    )
    if scenario:
        frame["TX_FRAUD_SCENARIO"] = frame["TX_FRAUD"]
    return frame


def test_folder_files_are_concatenated_sorted_and_the_answer_key_may_be_missing(tmp_path: Path) -> None:
    _handbook("2018-08-01", 20, 100, scenario=False).to_parquet(tmp_path / "transactions_2018-08-01_2018-09-30.parquet")
    _handbook("2018-04-01", 30, 0).to_parquet(tmp_path / "transactions_2018-04-01_2018-07-31.parquet")
    (tmp_path / "features_golden_x.parquet").write_bytes(b"not read")
    history = load_history(tmp_path)
    frame = history.frame
    assert len(frame) == 50 and frame["timestamp"].is_monotonic_increasing
    assert frame["transaction_id"].iloc[0] == "0" and frame["transaction_id"].iloc[-1] == "119"
    assert str(frame["timestamp"].dt.tz) == "UTC" and int(frame["is_fraud"].sum()) == 8 + 5
    cut = load_history(tmp_path, start=datetime(2018, 8, 1, tzinfo=UTC))
    assert len(cut.frame) == 20


def test_unusable_inputs_fail_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no transactions_"):
        load_history(tmp_path)
    no_labels = _handbook("2018-04-01", 10, 0).drop(columns=["TX_FRAUD", "TX_FRAUD_SCENARIO"])
    no_labels.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(InputError):
        load_history(tmp_path / "plain.csv")
    _handbook("2018-04-01", 10, 0).to_parquet(tmp_path / "h.parquet")
    with pytest.raises(InputError, match="no transactions in the range"):
        load_history(tmp_path / "h.parquet", start=datetime(2030, 1, 1, tzinfo=UTC))
