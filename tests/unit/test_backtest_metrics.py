"""Backtest metrics on hand-made examples: detection delay, daily CP@k against training's, threshold metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.metrics import card_precision_per_day, detection_delays, threshold_metrics, window_metrics
from training.evaluation import card_precision_at_k


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_detection_delay_counts_from_the_first_fraud_and_counts_missed_cards() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "b", "c", "d"],
            "timestamp": [
                _t("2024-01-01 00:00"),
                _t("2024-01-01 01:00"),
                _t("2024-01-01 03:00"),
                _t("2024-01-01 00:00"),
                _t("2024-01-02 00:00"),
                _t("2024-01-01"),
                _t("2024-01-01"),
            ],
            "label": [0, 1, 1, 1, 0, 1, 0],
            # a: alert before its fraud (ignored), then 2 h after; b: alert 24 h after; c: never alerted
            "alerted": [True, False, True, False, True, False, True],
        }
    )
    out = detection_delays(frame)
    assert out["fraud_cards"] == 3 and out["detected_cards"] == 2 and out["missed_cards"] == 1
    assert out["detection_hours_median"] == 13.0
    assert np.isclose(out["detection_hours_p90"], 2 + 0.9 * 22)


def test_daily_card_precision_averages_to_trainings_cp_at_k() -> None:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, n).astype(str),
            "timestamp": _t("2024-01-01") + pd.to_timedelta(rng.integers(0, 5 * 86400, n), unit="s"),
            "label": (rng.random(n) < 0.1).astype(int),
            "score": rng.random(n),
        }
    )
    daily = card_precision_per_day(frame, k=5)
    assert len(daily) == 5
    expected = card_precision_at_k(frame["label"], frame["score"], frame["timestamp"], frame["user_id"], k=5)
    assert np.isclose(daily.mean(), expected)


def test_threshold_metrics_come_from_the_alerts_raised() -> None:
    label = np.array([1, 1, 0, 0, 1], dtype=bool)
    alerted = np.array([1, 0, 1, 0, 1], dtype=bool)
    out = threshold_metrics(label, alerted, n_days=2)
    assert out["precision"] == 2 / 3 and out["recall"] == 2 / 3 and np.isclose(out["f1"], 2 / 3)
    assert out["alerts_per_day"] == 1.5


def test_window_metrics_skip_unscored_rows() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": ["1", "2", "3", "4"],
            "user_id": ["a", "b", "c", "d"],
            "timestamp": [_t("2024-01-01")] * 4,
            "score": [0.9, 0.1, np.nan, 0.2],
            "alerted": [True, False, False, False],
            "label": [1, 0, 1, 0],
        }
    )
    out = window_metrics(frame, threshold=0.5, k=2)
    assert out["n"] == 3 and out["roc_auc"] == 1.0 and out["recall"] == 1.0
