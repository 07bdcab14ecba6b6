"""Per-fold preparation on TRAINING rows only: preprocessing, resampling, RFE, time-aware grid search, models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudstream.errors import ConfigError, ModelError
from models.baselines import make_baseline
from models.mlp import FraudMLP
from models.preprocess import Preprocessor
from models.stacking import StackingEnsemble
from training.config import TrainingConfig

_CLASS_WEIGHT_MODELS = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting", "mlp")


def encode_categoricals(df: pd.DataFrame, columns: tuple[str, ...], method: str) -> pd.DataFrame:
    """Extra numeric columns from raw categorical ones: one-hot (`col=value`) or label codes (`col_code`)."""
    if method == "none" or not columns:
        return pd.DataFrame(index=df.index)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"categorical_columns {missing} are not in the history frame")
    if method == "onehot":
        return pd.get_dummies(df[list(columns)].astype("string").fillna("<missing>"), prefix_sep="=", dtype=float)
    return pd.DataFrame(
        {f"{c}_code": pd.factorize(df[c].astype("string").fillna("<missing>"), sort=True)[0] for c in columns},
        index=df.index,
    ).astype(float)


def fit_preprocessor(X: np.ndarray, cfg: TrainingConfig) -> Preprocessor:
    return Preprocessor.fit(
        X,
        impute=cfg.impute,
        clip_quantile=cfg.clip_quantile,
        standardise=cfg.standardise,
        log_heavy_tails=cfg.log_heavy_tails,
    )


def resample(X: np.ndarray, y: np.ndarray, cfg: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random undersampling (kept in time order) or SMOTE (synthetic rows appended) on the training rows."""
    if cfg.imbalance in ("none", "class_weight"):
        return X, y
    if len(np.unique(y)) < 2:
        return X, y
    if cfg.imbalance == "undersample":
        from imblearn.under_sampling import RandomUnderSampler

        sampler = RandomUnderSampler(sampling_strategy=cfg.undersample_ratio, random_state=cfg.seed)
        sampler.fit_resample(X, y)
        keep = np.sort(sampler.sample_indices_)
        return X[keep], y[keep]
    from imblearn.over_sampling import SMOTE

    n_minority = int(min(np.bincount(y.astype(int))))
    if n_minority < 2:
        return X, y
    Xr, yr = SMOTE(random_state=cfg.seed, k_neighbors=min(5, n_minority - 1)).fit_resample(X, y)
    return np.asarray(Xr), np.asarray(yr)


def rfe_select(X: np.ndarray, y: np.ndarray, n_features: int, seed: int) -> np.ndarray:
    """Seed 002's recursive feature elimination (decision-tree importances); a boolean column mask."""
    from sklearn.feature_selection import RFE
    from sklearn.tree import DecisionTreeClassifier

    if n_features >= X.shape[1]:
        return np.ones(X.shape[1], dtype=bool)
    selector = RFE(DecisionTreeClassifier(max_depth=8, random_state=seed), n_features_to_select=n_features, step=1)
    return np.asarray(selector.fit(X, y).support_)


def make_model(name: str, cfg: TrainingConfig) -> Any:
    params = dict(cfg.model_params.get(name, {}))
    if cfg.imbalance == "class_weight" and name in _CLASS_WEIGHT_MODELS:
        params.setdefault("class_weight", "balanced")
    params.setdefault("random_state", cfg.seed)
    try:
        if name == "mlp":
            return FraudMLP(**params)
        if name == "stack":
            if "base_learners" in params:
                params["base_learners"] = tuple(params["base_learners"])
            return StackingEnsemble(**params)
        return make_baseline(name, **params)
    except TypeError as exc:
        raise ConfigError(f"model_params for {name}: {exc}") from None


def tuned(name: str, X: np.ndarray, y: np.ndarray, cfg: TrainingConfig) -> tuple[Any, dict[str, Any]]:
    """The model, grid-searched with expanding time-ordered folds on these (time-sorted) rows when configured."""
    model = make_model(name, cfg)
    grid = cfg.grid_search.get(name)
    if not grid:
        return model, {}
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

    search = GridSearchCV(
        model, grid, scoring="average_precision", cv=TimeSeriesSplit(n_splits=cfg.grid_cv_folds), n_jobs=1, refit=False
    )
    try:
        search.fit(X, y)
    except ValueError as exc:
        raise ConfigError(f"grid_search for {name}: {str(exc).splitlines()[0]}") from None
    best = dict(search.best_params_)
    return model.set_params(**best), best


def check_trainable(y: np.ndarray, where: str) -> None:
    n_fraud = int(np.sum(y))
    if n_fraud == 0:
        raise ModelError(f"no frauds in the training window {where}; widen the window or check the labels")
    if n_fraud == len(y):
        raise ModelError(f"only frauds in the training window {where}; check the labels")
