"""Backtest metrics: the training module's AUC / AP / CP@k, threshold metrics from what was actually alerted,
alerts per day, card precision@k per day, and time from a card's first fraud to its first alert."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)


def threshold_metrics(label: np.ndarray, alerted: np.ndarray, n_days: int) -> dict[str, float]:
    """Precision, recall and F1 of the alerts the stream raised (the threshold in force when each was scored)."""
    tp = float(np.sum(label & alerted))
    n_alerts, n_fraud = float(np.sum(alerted)), float(np.sum(label))
    precision = tp / n_alerts if n_alerts else 0.0
    recall = tp / n_fraud if n_fraud else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "alerts": n_alerts,
        "true_alerts": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "alerts_per_day": n_alerts / max(n_days, 1),
    }


def detection_delays(frame: pd.DataFrame) -> dict[str, float]:
    """Per card with a fraud: hours from its first fraud to its first alert at or after it; missed cards counted."""
    frauds = frame[frame["label"] == 1]
    if frauds.empty:
        return {"fraud_cards": 0.0, "detected_cards": 0.0, "missed_cards": 0.0}
    first_fraud = frauds.groupby("user_id")["timestamp"].min()
    alerts = frame[frame["alerted"] & frame["user_id"].isin(first_fraud.index)][["user_id", "timestamp"]]
    alerts = alerts[alerts["timestamp"] >= alerts["user_id"].map(first_fraud)]
    first_alert = alerts.groupby("user_id")["timestamp"].min()
    delays = ((first_alert - first_fraud.loc[first_alert.index]) / HOUR).to_numpy(dtype=np.float64)
    out = {
        "fraud_cards": float(len(first_fraud)),
        "detected_cards": float(len(delays)),
        "missed_cards": float(len(first_fraud) - len(delays)),
    }
    if len(delays):
        out["detection_hours_median"] = float(np.median(delays))
        out["detection_hours_p90"] = float(np.percentile(delays, 90))
    return out


def card_precision_per_day(frame: pd.DataFrame, k: int = 100) -> pd.Series:
    """The handbook's daily card precision@k (cards caught on earlier days removed), one value per day."""
    caught: set[Any] = set()
    values = {}
    for day, rows in frame.groupby(frame["timestamp"].dt.floor("D"), sort=True):
        per_card = rows.groupby("user_id", sort=False).agg(score=("score", "max"), label=("label", "max"))
        per_card = per_card[~per_card.index.isin(caught)]
        top = per_card.sort_values("score", ascending=False, kind="mergesort").head(k)
        values[day] = float(top["label"].sum()) / k
        caught.update(top.index[top["label"] > 0])
    return pd.Series(values, dtype=np.float64)


def window_metrics(frame: pd.DataFrame, threshold: float, k: int = 100) -> dict[str, float]:
    """Every metric of one set of scored rows (columns: user_id, timestamp, score, alerted, label)."""
    from training.evaluation import metrics

    scored = frame[frame["score"].notna()]
    if scored.empty:
        return {"n": 0.0}
    days = scored["timestamp"].dt.floor("D")
    label = scored["label"].to_numpy().astype(bool)
    alerted = scored["alerted"].to_numpy().astype(bool)
    base = metrics(label.astype(int), scored["score"].to_numpy(), threshold, days, scored["user_id"].to_numpy(), k)
    keep = ("n", "n_fraud", "roc_auc", "average_precision", f"card_precision_at_{k}")
    out = {name: base[name] for name in keep}
    out["threshold"] = float(threshold)
    out |= threshold_metrics(label, alerted, days.nunique())
    out |= detection_delays(scored)
    return out


def daily(frame: pd.DataFrame, k: int = 100) -> pd.DataFrame:
    """Per day: transactions, frauds, alerts, alerted frauds, fraudulent cards and card precision@k."""
    day = frame["timestamp"].dt.floor("D")
    table = (
        frame.assign(day=day, true_alert=frame["alerted"] & (frame["label"] == 1))
        .groupby("day")
        .agg(
            transactions=("transaction_id", "size"),
            frauds=("label", "sum"),
            alerts=("alerted", "sum"),
            true_alerts=("true_alert", "sum"),
        )
    )
    table["fraud_cards"] = frame[frame["label"] == 1].groupby(day)["user_id"].nunique()
    table["fraud_cards"] = table["fraud_cards"].fillna(0).astype(int)
    table[f"card_precision_at_{k}"] = card_precision_per_day(frame[frame["score"].notna()], k)
    return table
