"""Drift test helpers: a tiny model published with a drift reference built the way training builds one (offline
features of a history, the model's scores on them), and a stream whose amounts shift from a given hour on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.contracts import Transaction
from tests.feature_streams import START, synthetic_stream

#: The drift tests' streams: this many transactions over this many hours (uniform in time, ~400 per hour).
EVENTS, HOURS, USERS = 4800, 12, 300


def hourly_frame(seed: int, shift_from_hour: int | None = None, factor: float = 6.0) -> pd.DataFrame:
    """EVENTS transactions over HOURS hours; amounts times `factor` from hour `shift_from_hour` on."""
    frame = synthetic_stream(EVENTS, users=USERS, merchants=80, days=HOURS / 24.0, seed=seed)
    if shift_from_hour is not None:
        shifted = frame["timestamp"] >= pd.Timestamp(START + timedelta(hours=shift_from_hour))
        frame.loc[shifted, "amount"] = np.round(frame.loc[shifted, "amount"] * factor, 2)
    return frame


def transactions_of(frame: pd.DataFrame) -> list[Transaction]:
    rows = frame.drop(columns=["is_fraud"]).to_dict("records")
    return [Transaction.model_validate({k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))})
            for row in rows]  # fmt: skip


def publish_watched_tiny_model(root: Path, seed: int = 101, **tiny: Any) -> tuple[str, dict[str, Any]]:
    """The tiny model, published with the drift reference of its scores and top features on a normal history
    (offline features, as training computes them); returns (version, reference)."""
    from features.config import FeatureConfig
    from features.offline import build_features
    from features.spec import FEATURE_NAMES
    from models.registry import ModelRegistry
    from models.tiny import publish_tiny_model
    from streamer.drift import build_reference

    first = publish_tiny_model(root, **tiny)
    model = ModelRegistry(root, allow_unsigned=True).load(first)
    feats = build_features(hourly_frame(seed), None, FeatureConfig())
    X = feats[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    scores = np.clip(model.score(X, "stack"), 0.0, 1.0)
    used = [FEATURE_NAMES.index(n) for n in model.used_features]
    reference = build_reference({"stack": scores}, X[:, used], model.used_features, model.contribution_weights, 4)
    data = reference.as_manifest()
    return publish_tiny_model(root, drift_reference=data, **tiny), data
