"""Fraud-team metrics: threshold metrics, ROC AUC, average precision, card precision@k per day, alert budgets.

Card precision@k follows the handbook: per day, each card's highest score; the k highest cards; the fraction of them
that are fraudulent that day; cards caught on earlier days (fraudulent AND in that day's top k) are removed first;
mean over days.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fraudstream.errors import InputError


def _days(days: Any) -> np.ndarray:
    """Day labels (anything hashable/sortable): datetimes become dates."""
    values = pd.Series(days)
    if pd.api.types.is_datetime64_any_dtype(values):
        return np.asarray(values.dt.floor("D").to_numpy())
    return np.asarray(values.to_numpy())


def card_precision_at_k(y: Any, score: Any, days: Any, card_ids: Any, k: int = 100) -> float:
    """Mean over days of the fraction of fraudulent cards among the day's top-k cards (earlier-caught cards removed)."""
    frame = pd.DataFrame({"y": np.asarray(y), "score": np.asarray(score), "day": _days(days), "card": card_ids})
    caught: set[Any] = set()
    precisions = []
    for _, day in frame.groupby("day", sort=True):
        per_card = day.groupby("card", sort=False).agg(score=("score", "max"), y=("y", "max"))
        per_card = per_card[~per_card.index.isin(caught)]
        top = per_card.sort_values("score", ascending=False, kind="mergesort").head(k)
        precisions.append(float(top["y"].sum()) / k)
        caught.update(top.index[top["y"] > 0])
    return float(np.mean(precisions)) if precisions else float("nan")


def metrics(
    y: Any, score: Any, threshold: float, days: Any = None, card_ids: Any = None, k: int = 100
) -> dict[str, float]:
    """Every metric we report, at `threshold` for the threshold-dependent ones."""
    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=np.float64)
    if y.shape != score.shape or y.size == 0:
        raise InputError(f"labels and scores must be non-empty and the same length (got {y.size} and {score.size})")
    pred = (score >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    out = {
        "n": float(y.size),
        "n_fraud": float(y.sum()),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, score)) if both else float("nan"),
    }
    out["recall_at_threshold"] = out["recall"]
    if days is not None:
        n_days = max(len(pd.unique(_days(days))), 1)
        out["alerts_per_day"] = float(pred.sum()) / n_days
        if card_ids is not None:
            out[f"card_precision_at_{k}"] = card_precision_at_k(y, score, days, card_ids, k)
    return out


def choose_threshold(
    y: Any,
    score: Any,
    days: Any = None,
    by: Literal["alert_budget", "f1"] = "alert_budget",
    alerts_per_day: float = 100.0,
) -> float:
    """A threshold from VALIDATION rows: the highest-F1 point, or the score that yields `alerts_per_day` alerts."""
    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=np.float64)
    if by == "f1":
        precision, recall, thresholds = precision_recall_curve(y, score)
        if thresholds.size == 0:
            return 0.5
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return float(thresholds[int(np.argmax(f1[:-1]))])
    if by != "alert_budget":
        raise InputError(f"unknown threshold policy '{by}'; use alert_budget or f1")
    if days is None:
        raise InputError("an alert-budget threshold needs the day of every validation row")
    n_days = max(len(pd.unique(_days(days))), 1)
    budget = int(np.floor(alerts_per_day * n_days))
    if budget <= 0:
        return float(np.inf)
    if budget >= score.size:
        return float(score.min())
    ordered = np.sort(score)[::-1]
    # the budget-th highest score; ties above it would exceed the budget, so step just above the tie
    cut = ordered[budget - 1]
    if ordered[budget] == cut:
        above = ordered[ordered > cut]
        return float(np.nextafter(cut, np.inf)) if above.size else float(cut)
    return float(cut)
