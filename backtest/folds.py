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
    model: Any  # models.loaded.LoadedModel, loaded by whoever uses the fold (None until then)
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


class FoldTrainer:
    """Offline features of the whole history (built once), then one trained, thresholded, published model per fold."""

    def __init__(
        self,
        history: pd.DataFrame,
        cfg: TrainingConfig,
        feature_cfg: Any,
        registry: ModelRegistry,
        *,
        scorer: str,
        blend_mlp_weight: float,
        say: Say,
    ) -> None:
        from models.registry import running_feature_spec_hash
        from training.pipeline import feature_dataset

        self.cfg = cfg.model_copy(update={"models": scorer_models(cfg, scorer), "dedup": False, "scorer": scorer,
                                          "blend_mlp_weight": blend_mlp_weight})
        self.registry = registry
        self.scorer = scorer
        self.blend_mlp_weight = blend_mlp_weight
        self.say = say
        say(f"building offline features for {len(history):,} transactions")
        self.data = feature_dataset(history, self.cfg, feature_cfg)
        users = history["user_id"].astype(str).to_numpy()
        if len(self.data.y) != len(history) or not np.array_equal(self.data.cards, users):
            raise InputError("offline features came back in another row order than the history; report this as a bug")
        self.tids = history["transaction_id"].astype(str).to_numpy()
        self.spec = running_feature_spec_hash()

    def _scores(self, fitted: Any, idx: np.ndarray) -> np.ndarray:
        from training.pipeline import _scores

        return _scorer_scores(_scores(fitted, self.data, idx), self.scorer, self.cfg, self.blend_mlp_weight)

    def train(self, w: FoldWindow) -> FoldModel:
        """Train on the fold's training window, pick its threshold, publish it; `model` is left for the caller."""
        from training.evaluation import metrics
        from training.pipeline import build_bundle, drift_reference, fit_fold

        assert w.train_start is not None and w.train_end is not None
        cfg, data = self.cfg, self.data
        train_idx = _rows(data.timestamps, w.train_start, w.train_end)
        if len(train_idx) == 0:
            raise InputError(f"fold {w.name}: no transactions in its training window {w.train_start}..{w.train_end}")
        self.say(f"fold {w.index + 1} ({w.name}): training {', '.join(cfg.models)} on {len(train_idx):,} rows")
        began = time.perf_counter()
        fitted = fit_fold(data, train_idx, cfg)
        fit_s = time.perf_counter() - began
        delay_idx = _rows(data.timestamps, w.train_end, w.test_start)
        # an alert budget needs no labels: the delay window's scores are known before the test window opens
        basis = delay_idx if len(delay_idx) and cfg.threshold_policy == "alert_budget" else train_idx
        threshold = _threshold(data.y[basis], self._scores(fitted, basis), data.days[basis], cfg)
        in_sample = metrics(data.y[train_idx], self._scores(fitted, train_idx), threshold)
        bundle = build_bundle(
            fitted, data, {"mlp": threshold, "blend": threshold, cfg.stack_scorer_model: threshold}, cfg, self.spec
        )
        bundle.blend_mlp_weight = self.blend_mlp_weight
        served = cfg.model_copy(update={"blend_mlp_weight": self.blend_mlp_weight})
        bundle.drift_reference = drift_reference(fitted, data, train_idx, bundle, served)
        version = self.registry.publish(
            bundle,
            metrics={"average_precision": in_sample["average_precision"], "in_sample": True},
            holdout_id=f"backtest-train-{w.name}",
            data_range=(str(w.train_start), str(w.train_end)),
            seed=cfg.seed,
            promote=False,
            extra={"backtest_fold": w.as_dict(), "threshold_basis": "delay window alert budget"},
        )
        fold = FoldModel(w, version, None, threshold, len(train_idx), int(data.y[train_idx].sum()), fit_s)
        test_idx = _rows(data.timestamps, w.test_start, w.test_end)
        if len(test_idx):
            offline = self._scores(fitted, test_idx)
            fold.offline_scores = pd.Series(offline, index=self.tids[test_idx])
            if data.y[test_idx].any():
                y, days, cards = data.y[test_idx], data.days[test_idx], data.cards[test_idx]
                fold.offline_metrics = metrics(y, offline, threshold, days, cards, cfg.card_precision_k)
        return fold


def _threshold(y: np.ndarray, scores: np.ndarray, days: np.ndarray, cfg: TrainingConfig) -> float:
    from training.evaluation import choose_threshold

    if cfg.threshold_policy == "fixed":
        return float(cfg.fixed_threshold)
    if cfg.threshold_policy == "f1" and len(np.unique(y)) < 2:
        return 0.5
    return float(choose_threshold(y, scores, days, by=cfg.threshold_policy, alerts_per_day=cfg.alerts_per_day))
