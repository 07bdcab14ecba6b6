"""Drift per day of a backtest: PSI of each day's stream scores against the training reference of the model that
scored them (streamer/drift.py; the reference in the version's manifest), and the day's alert rate. One binning
call over every score and one bincount per day: never a Python step per transaction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from streamer.drift import DriftReference, psi

DRIFT_COLUMNS = ("events", "alerts", "alert_rate", "psi_score", "model_version")


def references_of(models: list[Any], scorer: str) -> dict[str, DriftReference]:
    """The score references of the given loaded models (those published without one are left out)."""
    out: dict[str, DriftReference] = {}
    for model in models:
        data = (getattr(model, "manifest", None) or {}).get("drift_reference")
        if data is not None and scorer in data.get("scores", {}):
            out[str(model.version)] = DriftReference.from_manifest(data)
    return out


def daily_drift(scores: pd.DataFrame, references: Mapping[str, DriftReference], scorer: str) -> pd.DataFrame:
    """Per UTC day: scored events, alerts, alert rate, and the PSI of the day's scores against the reference of the
    day's model (the version that scored most of its transactions; NaN when that version has no reference).

    >>> from streamer.drift import BinnedReference
    >>> ref = DriftReference({"mlp": BinnedReference.fit("mlp", np.linspace(0, 1, 1000), 4)}, (), 1000)
    >>> frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01 01:00", "2024-01-01 02:00",
    ...                       "2024-01-02 01:00"], utc=True), "score": [0.1, 0.9, 0.95],
    ...                       "alerted": [False, True, True], "model_version": "v1"})
    >>> daily_drift(frame, {"v1": ref}, "mlp")[["events", "alert_rate"]].to_dict("list")
    {'events': [2, 1], 'alert_rate': [0.5, 1.0]}
    """
    scored = scores[scores["score"].notna()]
    if scored.empty:
        return pd.DataFrame(columns=list(DRIFT_COLUMNS))
    day = scored["timestamp"].dt.floor("D")
    rows = []
    for when, group in scored.groupby(day, sort=True):  # one step per day
        version = str(group["model_version"].mode().iloc[0]) if group["model_version"].notna().any() else ""
        ref = references.get(version)
        value = math.nan
        if ref is not None:
            value = psi(ref.scores[scorer].expected, ref.scores[scorer].counts(group["score"].to_numpy(np.float64)))
        alerts = int(group["alerted"].sum())
        rows.append({"day": when, "events": len(group), "alerts": alerts, "alert_rate": alerts / len(group),
                     "psi_score": value, "model_version": version})  # fmt: skip
    return pd.DataFrame(rows).set_index("day")
