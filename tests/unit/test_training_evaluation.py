"""Metrics: card precision@k on a hand-made example, thresholds by alert budget and by F1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluation import card_precision_at_k, choose_threshold, metrics


def test_card_precision_at_k_by_hand() -> None:
    frame = pd.DataFrame(
        [  # day, card, score, fraud
            (1, "a", 0.9, 1), (1, "a", 0.1, 0), (1, "b", 0.8, 0), (1, "c", 0.7, 1), (1, "d", 0.2, 1),
            (2, "a", 0.95, 1), (2, "b", 0.6, 0), (2, "d", 0.5, 1), (2, "e", 0.4, 0),
        ],
        columns=["day", "card", "score", "y"],
    )
    # day 1: cards by max score a(0.9,F) b(0.8) c(0.7,F) d(0.2,F); top 2 = a, b -> 1/2; caught: a
    # day 2: a removed (caught); b(0.6) d(0.5,F) e(0.4); top 2 = b, d -> 1/2
    assert card_precision_at_k(frame.y, frame.score, frame.day, frame.card, k=2) == pytest.approx(0.5)
    # k=3: day 1 top a, b, c -> 2/3, caught a and c; day 2 b, d, e -> 1/3
    assert card_precision_at_k(frame.y, frame.score, frame.day, frame.card, k=3) == pytest.approx(0.5)
    # the caught card dominates day 2 if it were not removed: k=1 gives day1 a (1/1), day2 b (0/1)
    assert card_precision_at_k(frame.y, frame.score, frame.day, frame.card, k=1) == pytest.approx(0.5)


def test_alert_budget_threshold_gives_the_budget_on_validation() -> None:
    rng = np.random.default_rng(0)
    days = np.repeat(pd.date_range("2018-01-01", periods=5, tz="UTC"), 1000)
    score = rng.random(5000)
    y = (rng.random(5000) < 0.01).astype(int)
    threshold = choose_threshold(y, score, days, by="alert_budget", alerts_per_day=40)
    assert int((score >= threshold).sum()) == 200
    out = metrics(y, score, threshold, days, np.arange(5000) % 700)
    assert out["alerts_per_day"] == pytest.approx(40.0)
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "card_precision_at_100",
            "recall_at_threshold"} <= set(out)


def test_ties_never_exceed_the_budget() -> None:
    score = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    threshold = choose_threshold(np.zeros(5), score, np.zeros(5), alerts_per_day=2)
    assert (score >= threshold).sum() <= 2


def test_f1_threshold_separates_a_clean_problem() -> None:
    score = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    y = np.array([0, 0, 0, 1, 1])
    threshold = choose_threshold(y, score, by="f1")
    assert metrics(y, score, threshold)["f1"] == 1.0
