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
    if "known_compromised" in frame.columns:  # the book's: known compromised cards out, caught cards per fold
        kept = frame[frame["score"].notna() & ~frame["known_compromised"].astype(bool)]
        parts = [card_precision_per_day(part, k) for _, part in kept.groupby("fold", sort=True)]
        book = pd.concat(parts) if parts else pd.Series(dtype=np.float64)
        table[f"card_precision_at_{k}_book"] = book.groupby(level=0).first()
    return table


# --- the book's protocol (Le Borgne et al., "Reproducible ML for Credit Card Fraud Detection", chapters 3-5) ---

BOOK = "book"  # known compromised cards removed from each assessed day; CP@k with earlier-caught cards removed
ALL = "all"  # every assessed transaction kept


def known_compromised(
    rows: pd.DataFrame, frauds: pd.DataFrame, since: dict[int, pd.Timestamp], delay_days: float
) -> np.ndarray:
    """Per assessed row (user_id, timestamp, fold): is its card already known to be compromised on the row's day?

    The handbook's rule: on assessed day t a card is known when it had a fraud on a day in
    [since, t - delay - 1], `since` the start of the fold's training window: the training window's frauds and the
    later ones whose labels have arrived by day t (a label arrives `delay_days` after its transaction, rounded up
    to whole days). `frauds`: the labelled frauds of the whole history (user_id, timestamp)."""
    known = np.zeros(len(rows), dtype=bool)
    if rows.empty or frauds.empty:
        return known
    delay = int(np.ceil(delay_days))
    row_day = _day_number(rows["timestamp"])
    fraud_day = _day_number(frauds["timestamp"])
    fraud_card = frauds["user_id"].to_numpy()
    fold = rows["fold"].to_numpy()
    for k in np.unique(fold):
        at = np.flatnonzero(fold == k)
        start = _day_number(pd.Series([since[int(k)]]))[0]
        window = fraud_day >= start
        first = pd.Series(fraud_day[window], index=fraud_card[window]).groupby(level=0).min()
        first_day = rows["user_id"].iloc[at].map(first).to_numpy(dtype=np.float64, na_value=np.inf)
        known[at] = first_day <= row_day[at] - (delay + 1)
    return known


def _day_number(timestamps: pd.Series) -> np.ndarray:
    """Days since the epoch (UTC) of each time."""
    values = pd.to_datetime(timestamps, utc=True).dt.tz_localize(None).to_numpy()
    return np.asarray(values.astype("datetime64[D]").astype(np.int64))


def card_precision_ceiling(frame: pd.DataFrame, k: int = 100) -> float:
    """CP@k with the labels as scores: per day min(fraud cards not caught on earlier days, k) / k, averaged.

    An upper bound of any scorer's CP@k whenever no day holds more than k fraud cards (handbook-sim: 40 to 55 per
    day for k = 100), since the labels then catch every fraud card on its first day."""
    if frame.empty:
        return float("nan")
    return float(card_precision_per_day(frame.assign(score=frame["label"].astype(np.float64)), k).mean())


def book_metrics(frame: pd.DataFrame, k: int = 100) -> dict[str, float]:
    """AUC, AP, CP@k and its ceiling under the book's protocol: rows of known compromised cards removed
    (column known_compromised), CP@k per day with cards caught on earlier days of the window removed."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    scored = frame[frame["score"].notna()]
    removed = scored[scored["known_compromised"].astype(bool)]
    kept = scored[~scored["known_compromised"].astype(bool)]
    out = {
        "n": float(len(kept)),
        "n_fraud": float(kept["label"].sum()),
        "removed_rows": float(len(removed)),
        "removed_cards": float(removed["user_id"].nunique()),
    }
    label = kept["label"].to_numpy().astype(int)
    both = len(np.unique(label)) == 2
    score = kept["score"].to_numpy(dtype=np.float64)
    out["roc_auc"] = float(roc_auc_score(label, score)) if both else float("nan")
    out["average_precision"] = float(average_precision_score(label, score)) if both else float("nan")
    out[f"card_precision_at_{k}"] = float(card_precision_per_day(kept, k).mean()) if len(kept) else float("nan")
    out[f"card_precision_at_{k}_ceiling"] = card_precision_ceiling(kept, k)
    return out


def mean_and_spread(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric: the mean over folds and its spread (sample standard deviation, ddof=1; NaN for one fold)."""
    keys = [key for key in per_fold[0] if all(key in m for m in per_fold)] if per_fold else []
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_fold], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[key] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "folds": float(len(values)),
        }
    return out
