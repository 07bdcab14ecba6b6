"""Which windows a backtest assesses: walk-forward folds (train, label delay, test) or one window for a fixed model.

Fold k tests [first_test_start + k * test_days, + test_days) with a model trained on the `train_days` that end
`delay_days` before its test window. `--protocol handbook` is train 7, delay 7, test 7 after 31 days of warm-up
(the 30-day feature windows filled, plus a day), folds over the whole range; on handbook-sim its weeks are the book's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fraudstream.errors import InputError

HANDBOOK_WARMUP_DAYS = 31
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class FoldWindow:
    index: int
    name: str
    test_start: pd.Timestamp
    test_end: pd.Timestamp  # exclusive; clipped to the end of the data for a last, partial window
    train_start: pd.Timestamp | None = None  # None: a fixed model (no training inside the backtest)
    train_end: pd.Timestamp | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        def text(t: pd.Timestamp | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "index": self.index,
            "name": self.name,
            "train_start": text(self.train_start),
            "train_end": text(self.train_end),
            "test_start": text(self.test_start),
            "test_end": text(self.test_end),
        }


def utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def walk_forward(
    first: pd.Timestamp,
    last: pd.Timestamp,
    *,
    train_days: int,
    delay_days: int,
    test_days: int,
    folds: int | None = None,
    first_test_start: pd.Timestamp | None = None,
    warmup_days: int = 0,
) -> list[FoldWindow]:
    """Folds oldest first. Without --first-test-start: `folds` given -> the last `folds` full windows of the data;
    none given -> from the first day after warm-up + train + delay to the end (a last partial window included)."""
    if min(train_days, test_days) < 1 or delay_days < 0 or warmup_days < 0:
        raise InputError("train and test days must be >= 1, delay and warm-up days >= 0")
    end = last + pd.Timedelta(microseconds=1)  # the data end, exclusive
    last_day_end = last.floor("D") + DAY
    earliest = first.floor("D") + pd.Timedelta(days=warmup_days + train_days + delay_days)
    if first_test_start is not None:
        start = utc(first_test_start)
    elif folds is not None:
        last_full = last_day_end - pd.Timedelta(days=test_days)
        start = last_full - pd.Timedelta(days=(folds - 1) * test_days)
    else:
        start = earliest
    if start - pd.Timedelta(days=train_days + delay_days) < first.floor("D"):
        raise InputError(
            f"the first test window starts {start:%Y-%m-%d}, but its training window would begin before the data "
            f"({first:%Y-%m-%d}); use a later --first-test-start or fewer --folds"
        )
    windows: list[FoldWindow] = []
    test_start = start
    while test_start < end and (folds is None or len(windows) < folds):
        test_end = test_start + pd.Timedelta(days=test_days)
        if folds is not None and test_end > last_day_end and first_test_start is None:
            break
        train_end = test_start - pd.Timedelta(days=delay_days)
        train_start = train_end - pd.Timedelta(days=train_days)
        name = f"test {test_start:%Y-%m-%d}"
        windows.append(FoldWindow(len(windows), name, test_start, min(test_end, last_day_end), train_start, train_end))
        test_start = test_end
    if not windows:
        raise InputError(
            f"the data ({first:%Y-%m-%d}..{last:%Y-%m-%d}) is too short for one fold of {warmup_days} warm-up + "
            f"{train_days} train + {delay_days} delay + {test_days} test days"
        )
    if folds is not None and len(windows) < folds:
        raise InputError(f"the data holds only {len(windows)} of the {folds} folds asked for; use fewer --folds")
    return windows


def fixed_window(
    first: pd.Timestamp, last: pd.Timestamp, version: str, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> list[FoldWindow]:
    """One assessed window for a registry model: [start, end) within the data (default: all of it)."""
    lo = utc(start) if start is not None else first
    hi = utc(end) if end is not None else last + pd.Timedelta(microseconds=1)
    if hi <= lo:
        raise InputError(f"the assessed window {lo} .. {hi} is empty; check --assess-start/--assess-end")
    return [FoldWindow(0, f"model {version}", lo, hi)]
