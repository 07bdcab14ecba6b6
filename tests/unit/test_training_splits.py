"""Splits: prequential folds follow the handbook calendar and never train on the future or the delay period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.errors import InputError
from training.splits import drop_known_compromised, prequential_folds, split_70_15_15, stratified_80_20


def _hourly(start: str, days: int) -> pd.Series:
    return pd.Series(pd.date_range(start, periods=days * 24, freq="h", tz="UTC"))


def test_handbook_calendar() -> None:
    ts = _hourly("2018-06-01", 61)
    folds = prequential_folds(ts, anchor="2018-07-25")
    assert [f.train_start.date().isoformat() for f in folds] == ["2018-06-20", "2018-06-27", "2018-07-04", "2018-07-11"]
    assert [f.test_start.date().isoformat() for f in folds] == ["2018-07-04", "2018-07-11", "2018-07-18", "2018-07-25"]


@pytest.mark.parametrize("delay", [0, 3, 7])
def test_never_trains_on_the_future(delay: int) -> None:
    rng = np.random.default_rng(0)
    ts = pd.Series(pd.to_datetime("2018-05-01", utc=True) + pd.to_timedelta(rng.integers(0, 80 * 86400, 5000), "s"))
    for fold in prequential_folds(ts, train_days=5, delay_days=delay, test_days=4, n_folds=5):
        train_ts, test_ts = ts.iloc[fold.train_index], ts.iloc[fold.test_index]
        assert train_ts.max() < test_ts.min() - pd.Timedelta(days=delay)
        assert set(fold.train_index).isdisjoint(fold.test_index)
        assert train_ts.min() >= pd.Timestamp(fold.train_start) and test_ts.max() < pd.Timestamp(fold.test_end)


def test_fold_without_data_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="has no data"):
        prequential_folds(_hourly("2018-06-01", 20), n_folds=4, anchor="2018-06-14")


def test_known_compromised_cards_leave_the_test_days() -> None:
    days = pd.Series(pd.to_datetime(["2018-01-01", "2018-01-02", "2018-01-15", "2018-01-16", "2018-01-17",
                                     "2018-01-09", "2018-01-17", "2018-01-15"], utc=True))
    cards = np.array(["a", "b", "a", "b", "b", "c", "c", "d"])
    y = np.array([1, 0, 0, 0, 0, 1, 0, 0])
    fold = prequential_folds(days, train_days=7, delay_days=7, test_days=7, n_folds=1, anchor="2018-01-15")[0]
    kept = drop_known_compromised(days, y, cards, fold, delay_days=7)
    # a: fraud in training -> removed; c: fraud on 01-09 is known on 01-17 -> removed that day; b, d stay
    assert sorted(cards[kept]) == ["b", "b", "d"]


def test_random_splits_keep_the_fraud_rate() -> None:
    y = np.r_[np.ones(50), np.zeros(950)].astype(int)
    train, test = stratified_80_20(y, seed=1)
    assert len(test) == 200 and y[test].sum() == 10 and set(train).isdisjoint(test)
    a, b, c = split_70_15_15(y, seed=2)
    assert (len(a), len(b), len(c)) == (700, 150, 150) and len(set(a) | set(b) | set(c)) == 1000
