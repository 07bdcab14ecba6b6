"""Train/test splits: time-ordered prequential folds with a label delay (default) and the seeds' random splits.

A prequential fold trains on [start, start + train_days), skips `delay_days` (labels not known yet), and assesses
[start + train_days + delay_days, ... + test_days). Fold k's test week starts at anchor - k * test_days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fraudstream.errors import InputError


@dataclass(frozen=True)
class Fold:
    name: str
    train_start: datetime
    train_end: datetime  # exclusive
    test_start: datetime
    test_end: datetime  # exclusive
    train_index: np.ndarray
    test_index: np.ndarray


def _utc(values: Any) -> pd.Series:
    series = pd.Series(pd.to_datetime(values))
    if series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    return series.dt.tz_convert("UTC")


def _naive(ts: pd.Timestamp) -> np.datetime64:
    return np.datetime64(ts.tz_convert("UTC").tz_localize(None).to_datetime64())


def utc_range_index(timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Positions of the rows with start <= timestamp < end (aware UTC)."""
    values = _utc(timestamps).dt.tz_localize(None).to_numpy()
    return np.flatnonzero((values >= _naive(start)) & (values < _naive(end)))


def prequential_folds(
    timestamps: Any,
    train_days: int = 7,
    delay_days: int = 7,
    test_days: int = 7,
    n_folds: int = 4,
    anchor: Any = None,
) -> list[Fold]:
    """Folds oldest first. `anchor`: start of the LATEST test window (default: the last full test window in data)."""
    ts = _utc(timestamps)
    if ts.empty:
        raise InputError("no transactions to split")
    if anchor is None:
        last_day = ts.max().floor("D")
        anchor_ts = last_day + pd.Timedelta(days=1) - pd.Timedelta(days=test_days)
    else:
        anchor_ts = pd.Timestamp(anchor)
        anchor_ts = anchor_ts.tz_localize("UTC") if anchor_ts.tzinfo is None else anchor_ts.tz_convert("UTC")
    values = ts.dt.tz_localize(None).to_numpy()
    folds = []
    for k in range(n_folds - 1, -1, -1):
        test_start = anchor_ts - pd.Timedelta(days=k * test_days)
        test_end = test_start + pd.Timedelta(days=test_days)
        train_end = test_start - pd.Timedelta(days=delay_days)
        train_start = train_end - pd.Timedelta(days=train_days)
        train_index = np.flatnonzero((values >= _naive(train_start)) & (values < _naive(train_end)))
        test_index = np.flatnonzero((values >= _naive(test_start)) & (values < _naive(test_end)))
        if train_index.size == 0 or test_index.size == 0:
            raise InputError(
                f"prequential fold testing {test_start:%Y-%m-%d} has no data (train {train_start:%Y-%m-%d}.."
                f"{train_end - timedelta(seconds=1):%Y-%m-%d}); use fewer folds or another anchor"
            )
        folds.append(
            Fold(
                name=f"test {test_start:%Y-%m-%d}",
                train_start=train_start.to_pydatetime(),
                train_end=train_end.to_pydatetime(),
                test_start=test_start.to_pydatetime(),
                test_end=test_end.to_pydatetime(),
                train_index=train_index,
                test_index=test_index,
            )
        )
    return folds


def stratified_80_20(y: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001: a shuffled split stratified on the label, 80 % train / 20 % test (indices)."""
    y = np.asarray(y)
    idx = np.arange(y.size)
    train, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def split_70_15_15(y: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed 002: 70 % train, 15 % validation, 15 % test, stratified (indices)."""
    y = np.asarray(y)
    idx = np.arange(y.size)
    train, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def drop_known_compromised(
    timestamps: Any, y: Any, cards: Any, fold: Fold, delay_days: int
) -> np.ndarray:
    """The fold's test rows minus cards already known compromised (the handbook's assessment rule).

    A card is known compromised on test day t when it had a fraud on a day in [train_start, t - delay - 1 day]:
    frauds of the training week and of the delay period whose labels have arrived by day t.
    """
    ts = _utc(timestamps).dt.tz_localize(None).to_numpy()
    y = np.asarray(y).astype(bool)
    cards = np.asarray(cards)
    start = _naive(pd.Timestamp(fold.train_start))
    window = np.flatnonzero((ts >= start) & (ts < _naive(pd.Timestamp(fold.test_end))) & y)
    day_number = ts.astype("datetime64[D]").astype(np.int64)
    first_fraud_day = pd.Series(day_number[window], index=cards[window]).groupby(level=0).min()
    test = fold.test_index
    known_since = pd.Series(cards[test]).map(first_fraud_day).to_numpy(dtype=np.float64, na_value=np.inf)
    known = known_since <= day_number[test] - (delay_days + 1)
    return np.asarray(test[~known])
