"""Walk-forward training inside a backtest, with training's own pipeline functions, one model version per fold.

Features come once from features.offline.build_features over the whole history (they are causal: a row's features
use only earlier events and labels known by then), so fold k trains on exactly what existed at its train end.
The threshold (an alert budget) comes from the fold model's scores of the delay window (seen, not yet labelled,
before the test window opens; the F1 policy uses the training rows), never from the test window.
The batch path's test-window scores are kept for the parity check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.windows import FoldWindow
from fraudstream.errors import InputError
from models.registry import ModelRegistry
from training.config import TrainingConfig

Say = Callable[[str], None]


@dataclass
class FoldModel:
    window: FoldWindow
    version: str
    model: Any  # models.loaded.LoadedModel
    threshold: float
    train_rows: int = 0
    train_frauds: int = 0
    fit_seconds: float = 0.0
    #: the training module's batch path on the test window: transaction_id -> score, and its metrics
    offline_scores: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.float64))
    offline_metrics: dict[str, float] = field(default_factory=dict)


def scorer_models(cfg: TrainingConfig, scorer: str) -> tuple[str, ...]:
    """Only the models the streamer's scorer uses are trained per fold."""
    needed = {"mlp": ("mlp",), "stack": (cfg.stack_scorer_model,), "blend": ("mlp", cfg.stack_scorer_model)}[scorer]
    return needed


def _rows(ts: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:
    return np.flatnonzero(((ts >= lo) & (ts < hi)).to_numpy())


def _scorer_scores(scores: dict[str, np.ndarray], scorer: str, cfg: TrainingConfig, blend_w: float) -> np.ndarray:
    if scorer == "mlp":
        return scores["mlp"]
    if scorer == "stack":
        return scores[cfg.stack_scorer_model]
    return blend_w * scores["mlp"] + (1.0 - blend_w) * scores[cfg.stack_scorer_model]


def train_folds(
    history: pd.DataFrame,
    windows: list[FoldWindow],
    cfg: TrainingConfig,
    feature_cfg: Any,
    registry: ModelRegistry,
    *,
    scorer: str,
    blend_mlp_weight: float,
    say: Say,
) -> list[FoldModel]:
    """Train, threshold and publish one version per fold (to the backtest's private registry)."""
    from models.registry import running_feature_spec_hash
    from training.evaluation import metrics
    from training.pipeline import _scores, build_bundle, feature_dataset, fit_fold

    cfg = cfg.model_copy(update={"models": scorer_models(cfg, scorer), "dedup": False})
    say(f"building offline features for {len(history):,} transactions")
    data = feature_dataset(history, cfg, feature_cfg)
    if len(data.y) != len(history) or not np.array_equal(data.cards, history["user_id"].astype(str).to_numpy()):
        raise InputError("offline features came back in another row order than the history; report this as a bug")
    tids = history["transaction_id"].astype(str).to_numpy()
    spec = running_feature_spec_hash()
    out = []
    for w in windows:
        assert w.train_start is not None and w.train_end is not None
        train_idx = _rows(data.timestamps, w.train_start, w.train_end)
        if len(train_idx) == 0:
            raise InputError(f"fold {w.name}: no transactions in its training window {w.train_start}..{w.train_end}")
        say(
            f"fold {w.index + 1}/{len(windows)} ({w.name}): training {', '.join(cfg.models)} on {len(train_idx):,} rows"
        )
        began = time.perf_counter()
        fitted = fit_fold(data, train_idx, cfg)
        fit_s = time.perf_counter() - began
        delay_idx = _rows(data.timestamps, w.train_end, w.test_start)
        # an alert budget needs no labels: the delay window's scores are known before the test window opens
        basis = delay_idx if len(delay_idx) and cfg.threshold_policy == "alert_budget" else train_idx
        basis_scores = _scorer_scores(_scores(fitted, data, basis), scorer, cfg, blend_mlp_weight)
        threshold = _threshold(data.y[basis], basis_scores, data.days[basis], cfg)
        train_scores = _scorer_scores(_scores(fitted, data, train_idx), scorer, cfg, blend_mlp_weight)
        in_sample = metrics(data.y[train_idx], train_scores, threshold)
        thresholds = {"mlp": threshold, "blend": threshold, cfg.stack_scorer_model: threshold}
        bundle = build_bundle(fitted, data, thresholds, cfg, spec)
        bundle.blend_mlp_weight = blend_mlp_weight
        version = registry.publish(
            bundle,
            metrics={"average_precision": in_sample["average_precision"], "in_sample": True},
            holdout_id=f"backtest-train-{w.name}",
            data_range=(str(w.train_start), str(w.train_end)),
            seed=cfg.seed,
            promote=False,
            extra={"backtest_fold": w.as_dict(), "threshold_basis": "delay window alert budget"},
        )
        fold = FoldModel(
            w, version, registry.load(version), threshold, len(train_idx), int(data.y[train_idx].sum()), fit_s
        )
        test_idx = _rows(data.timestamps, w.test_start, w.test_end)
        if len(test_idx):
            offline = _scorer_scores(_scores(fitted, data, test_idx), scorer, cfg, blend_mlp_weight)
            fold.offline_scores = pd.Series(offline, index=tids[test_idx])
            if data.y[test_idx].any():
                fold.offline_metrics = metrics(
                    data.y[test_idx],
                    offline,
                    threshold,
                    data.days[test_idx],
                    data.cards[test_idx],
                    cfg.card_precision_k,
                )
        out.append(fold)
    return out


def _threshold(y: np.ndarray, scores: np.ndarray, days: np.ndarray, cfg: TrainingConfig) -> float:
    from training.evaluation import choose_threshold

    if cfg.threshold_policy == "fixed":
        return float(cfg.fixed_threshold)
    if cfg.threshold_policy == "f1" and len(np.unique(y)) < 2:
        return 0.5
    return float(choose_threshold(y, scores, days, by=cfg.threshold_policy, alerts_per_day=cfg.alerts_per_day))
