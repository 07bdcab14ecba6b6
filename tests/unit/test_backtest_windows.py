"""Walk-forward windows: the book's validation weeks, the handbook protocol's grid, too-short data."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest

from backtest.windows import HANDBOOK_WARMUP_DAYS, fixed_window, walk_forward
from fraudstream.errors import InputError

FIRST = pd.Timestamp("2018-04-01 00:00:31", tz="UTC")
LAST = pd.Timestamp("2018-07-31 23:59:50", tz="UTC")


def _days(values: list[pd.Timestamp | None]) -> list[str]:
    return [f"{v:%m-%d}" for v in values if v is not None]


def test_last_four_full_weeks_are_the_books_validation_weeks() -> None:
    folds = walk_forward(FIRST, LAST, train_days=7, delay_days=7, test_days=7, folds=4)
    assert _days([f.test_start for f in folds]) == ["07-04", "07-11", "07-18", "07-25"]
    assert _days([f.train_start for f in folds]) == ["06-20", "06-27", "07-04", "07-11"]
    assert folds[-1].test_end == pd.Timestamp("2018-08-01", tz="UTC")
    same = walk_forward(
        FIRST, LAST, train_days=7, delay_days=7, test_days=7, folds=4, first_test_start=pd.Timestamp("2018-07-04")
    )
    assert same == folds


def test_handbook_protocol_covers_the_range_on_the_books_week_grid() -> None:
    last = pd.Timestamp("2018-09-30 23:59:59", tz="UTC")
    folds = walk_forward(FIRST, last, train_days=7, delay_days=7, test_days=7, warmup_days=HANDBOOK_WARMUP_DAYS)
    starts = [f.test_start for f in folds]
    assert starts[0] == pd.Timestamp("2018-05-16", tz="UTC")
    # the book's validation (07-04) and test (08-08 .. 08-29) weeks are folds of the grid
    for week in ("2018-07-04", "2018-08-08", "2018-08-15", "2018-08-22", "2018-08-29"):
        assert pd.Timestamp(week, tz="UTC") in starts
    # contiguous up to the end: every transaction after the first test start is assessed; last window partial
    assert all(a.test_end == b.test_start for a, b in pairwise(folds))
    assert folds[-1].test_end == pd.Timestamp("2018-10-01", tz="UTC")
    assert all(f.train_end is not None and f.train_end <= f.test_start for f in folds)


def test_data_too_short_for_one_fold_is_one_clear_error() -> None:
    with pytest.raises(InputError, match=r"too short|before the data"):
        walk_forward(FIRST, FIRST + pd.Timedelta(days=10), train_days=7, delay_days=7, test_days=7)
    with pytest.raises(InputError, match="fewer --folds"):
        walk_forward(FIRST, LAST, train_days=7, delay_days=7, test_days=7, folds=30)


def test_fixed_window_defaults_to_the_whole_range() -> None:
    (window,) = fixed_window(FIRST, LAST, "v1", None, None)
    assert window.test_start == FIRST and window.test_end > LAST and window.train_start is None
    with pytest.raises(InputError):
        fixed_window(FIRST, LAST, "v1", LAST, FIRST)
