"""The offline training job: history -> features (features.offline, same code as the streamer) -> folds ->
preprocess, resample, select, fit, evaluate -> report -> registry.publish."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.errors import ConfigError, InputError, ModelError, PromotionRefused
from models.bundle import ModelBundle
from models.registry import ModelRegistry
from training.config import TrainingConfig
from training.evaluation import choose_threshold, metrics
from training.prepare import check_trainable, encode_categoricals, fit_preprocessor, resample, rfe_select, tuned
from training.splits import (
    drop_known_compromised,
    prequential_folds,
    split_70_15_15,
    stratified_80_20,
    utc_range_index,
)

Progress = Callable[[str], None]


@dataclass
class Split:
    name: str
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray | None = None  # threshold rows when they differ from `test`


@dataclass
class FoldOutcome:
    name: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> metrics
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # model -> test scores
    thresholds: dict[str, float] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    best_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: tuple[str, ...] = ()  # the columns the fold's models saw (RFE's selection when rfe_features is set)
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class FittedFold:
    names: tuple[str, ...]
    preprocessor: Any
    models: dict[str, Any]


@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    names: tuple[str, ...]
    timestamps: pd.Series
    days: np.ndarray
    cards: np.ndarray
    input_names: tuple[str, ...]
    publishable: bool


def feature_dataset(history: pd.DataFrame, cfg: TrainingConfig, feature_cfg: Any) -> Dataset:
    """Build features with features.offline.build_features and pick the configured columns."""
    from features.offline import build_features
    from features.spec import FEATURE_NAMES

    if "is_fraud" not in history.columns:
        raise InputError("the history has no is_fraud column; training needs labels")
    if cfg.dedup:
        history = history.drop_duplicates(subset="transaction_id", keep="first")
    feats = build_features(history.reset_index(drop=True), None, feature_cfg)
    names = tuple(cfg.features) if cfg.features else tuple(FEATURE_NAMES)
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ConfigError(f"features {unknown} are not in features.spec.FEATURE_NAMES")
    X = feats[list(names)].to_numpy(dtype=np.float64)
    extra = encode_categoricals(history, cfg.categorical_columns, cfg.categorical_encoding)
    if not extra.empty:
        extra = extra.set_axis(history["transaction_id"].astype(str).to_numpy()).loc[feats["transaction_id"]]
        X = np.column_stack([X, extra.to_numpy(dtype=np.float64)])
        names = names + tuple(extra.columns)
    ts = feats["timestamp"]
    return Dataset(
        X=X,
        y=feats["is_fraud"].to_numpy().astype(int),
        names=names,
        timestamps=ts,
        days=ts.dt.floor("D").to_numpy(),
        cards=feats["user_id"].to_numpy(),
        input_names=tuple(FEATURE_NAMES),
        publishable=extra.empty,
    )


def make_splits(data: Dataset, cfg: TrainingConfig) -> list[Split]:
    if cfg.protocol == "prequential":
        p = cfg.prequential
        folds = prequential_folds(data.timestamps, p.train_days, p.delay_days, p.test_days, p.n_folds, p.anchor)
        if not p.drop_known_compromised:
            return [Split(f.name, f.train_index, f.test_index) for f in folds]
        return [
            Split(f.name, f.train_index, drop_known_compromised(data.timestamps, data.y, data.cards, f, p.delay_days))
            for f in folds
        ]
    if cfg.protocol == "stratified_80_20":
        train, test = stratified_80_20(data.y, cfg.seed)
        return [Split("stratified 80/20", train, test, validation=train)]
    train, val, test = split_70_15_15(data.y, cfg.seed)
    return [Split("70/15/15", train, test, validation=val)]


def fit_fold(data: Dataset, idx: np.ndarray, cfg: TrainingConfig, out: FoldOutcome | None = None) -> FittedFold:
    """Preprocess, select and fit every configured model on the rows `idx` (training rows only)."""
    X, y = data.X[idx], data.y[idx]
    check_trainable(y, out.name if out else "")
    mask = np.ones(X.shape[1], dtype=bool)
    if cfg.rfe_features is not None:
        mask = rfe_select(fit_preprocessor(X, cfg).transform(X), y, cfg.rfe_features, cfg.seed)
    names = tuple(n for n, keep in zip(data.names, mask, strict=True) if keep)
    if out is not None:
        out.features = names
    pre = fit_preprocessor(X[:, mask], cfg)
    Z, yz = resample(pre.transform(X[:, mask]), y, cfg)
    models = {}
    for name in cfg.models:
        start = time.perf_counter()
        model, best = tuned(name, Z, yz, cfg)
        models[name] = model.fit(Z, yz)
        if out is not None:
            out.fit_seconds[name] = time.perf_counter() - start
            out.best_params[name] = best
    return FittedFold(names, pre, models)


def _threshold(y: np.ndarray, score: np.ndarray, days: np.ndarray, cfg: TrainingConfig) -> float:
    if cfg.threshold_policy == "fixed":
        return cfg.fixed_threshold
    return choose_threshold(y, score, days, by=cfg.threshold_policy, alerts_per_day=cfg.alerts_per_day)


def _scores(fitted: FittedFold, data: Dataset, idx: np.ndarray) -> dict[str, np.ndarray]:
    cols = np.array([data.names.index(n) for n in fitted.names], dtype=np.intp)
    Z = fitted.preprocessor.transform(data.X[np.ix_(idx, cols)])
    return {name: np.asarray(m.predict_proba(Z)[:, 1]) for name, m in fitted.models.items()}


def evaluate_split(data: Dataset, split: Split, cfg: TrainingConfig) -> tuple[FoldOutcome, FittedFold]:
    out = FoldOutcome(split.name)
    fitted = fit_fold(data, split.train, cfg, out)
    test_scores = _scores(fitted, data, split.test)
    w = cfg.blend_mlp_weight  # the policy's weight: the blend threshold is calibrated for exactly this blend
    if "mlp" in test_scores and cfg.stack_scorer_model in test_scores:
        test_scores["blend"] = w * test_scores["mlp"] + (1.0 - w) * test_scores[cfg.stack_scorer_model]
    val_scores = test_scores if split.validation is None else _scores(fitted, data, split.validation)
    if "blend" in test_scores and split.validation is not None:
        val_scores["blend"] = w * val_scores["mlp"] + (1.0 - w) * val_scores[cfg.stack_scorer_model]
    val_idx = split.test if split.validation is None else split.validation
    y_test, days, cards = data.y[split.test], data.days[split.test], data.cards[split.test]
    for name, score in test_scores.items():
        out.thresholds[name] = _threshold(data.y[val_idx], val_scores[name], data.days[val_idx], cfg)
        out.metrics[name] = metrics(y_test, score, out.thresholds[name], days, cards, cfg.card_precision_k)
    out.scores, out.y = test_scores, y_test
    return out, fitted


def mean_metrics(outcomes: list[FoldOutcome]) -> dict[str, dict[str, float]]:
    models = outcomes[0].metrics.keys()
    return {
        m: {k: float(np.nanmean([o.metrics[m][k] for o in outcomes])) for k in outcomes[0].metrics[m]} for m in models
    }


def _importances(model: Any, n: int) -> np.ndarray:
    raw = getattr(model, "feature_importances_", None)
    if raw is None and getattr(model, "coef_", None) is not None:
        raw = np.abs(np.ravel(model.coef_))
    if raw is None or not np.isfinite(raw).all() or np.sum(raw) <= 0:
        return np.full(n, 1.0 / n)
    return np.asarray(raw, dtype=np.float64) / float(np.sum(raw))


def holdout_id(data: Dataset, splits: list[Split], cfg: TrainingConfig) -> str:
    """Identifies the assessment rows: same protocol, windows and rows -> same id -> comparable metrics."""
    digest = hashlib.sha256(cfg.protocol.encode())
    for s in splits:
        digest.update(s.name.encode())
        digest.update(np.asarray(data.y[s.test], dtype=np.int8).tobytes())
        digest.update(str(len(s.test)).encode())
    return f"{cfg.protocol}-{digest.hexdigest()[:16]}"


def final_training_rows(data: Dataset, splits: list[Split], cfg: TrainingConfig) -> np.ndarray:
    """Prequential: the latest `train_days` with known labels (delay before the end); else the train split."""
    if cfg.protocol != "prequential":
        return splits[-1].train
    p = cfg.prequential
    end = data.timestamps.max().floor("D") + pd.Timedelta(days=1) - pd.Timedelta(days=p.delay_days)
    start = end - pd.Timedelta(days=p.train_days)
    return utc_range_index(data.timestamps, start, end)


def build_bundle(
    fitted: FittedFold, data: Dataset, thresholds: dict[str, float], cfg: TrainingConfig, spec_hash: str
) -> ModelBundle:
    from models.policy import ScoringPolicy

    stack = fitted.models.get(cfg.stack_scorer_model)
    mlp = fitted.models.get("mlp")
    weights_from = stack if stack is not None else next(iter(fitted.models.values()))
    served = {k: thresholds[k] for k in ("mlp", "blend") if k in thresholds} | (
        {"stack": thresholds[cfg.stack_scorer_model]} if stack is not None else {}
    )
    scorer = cfg.policy_scorer
    if scorer not in served:
        raise ConfigError(f"the policy's scorer {scorer} was not trained; add its models or set scorer")
    policy = ScoringPolicy(scorer, cfg.blend_mlp_weight, served[scorer],
                           cfg.alerts_per_day if cfg.threshold_policy == "alert_budget" else None,
                           cfg.threshold_policy)  # fmt: skip
    return ModelBundle(
        input_names=data.input_names,
        used_features=fitted.names,
        preprocessor=fitted.preprocessor,
        mlp=mlp,
        stack=stack,
        thresholds=served,
        feature_spec_hash=spec_hash,
        contribution_weights=_importances(weights_from, len(fitted.names)),
        blend_mlp_weight=cfg.blend_mlp_weight,
        policy=policy.as_manifest(),
    )


def drift_reference(
    fitted: FittedFold, data: Dataset, rows: np.ndarray, bundle: ModelBundle, cfg: TrainingConfig
) -> dict[str, Any]:
    """The drift reference of the published models on their own training rows (streamer/drift.py): every served
    scorer's scores and the `drift_top_features` used features of largest importance, in quantile bins."""
    from streamer.drift import build_reference

    raw = _scores(fitted, data, rows)
    stack_name = cfg.stack_scorer_model
    scores = {k: raw[k] for k in ("mlp",) if k in raw} | ({"stack": raw[stack_name]} if stack_name in raw else {})
    if "mlp" in scores and "stack" in scores:
        scores["blend"] = cfg.blend_mlp_weight * scores["mlp"] + (1.0 - cfg.blend_mlp_weight) * scores["stack"]
    cols = np.array([data.names.index(n) for n in fitted.names], dtype=np.intp)
    clipped = {k: np.clip(v, 0.0, 1.0) for k, v in scores.items()}
    X = data.X[np.ix_(rows, cols)]
    ref = build_reference(clipped, X, fitted.names, bundle.contribution_weights, cfg.drift_top_features, cfg.drift_bins)
    return ref.as_manifest()


def run_training(
    history: pd.DataFrame,
    cfg: TrainingConfig,
    feature_cfg: Any,
    *,
    registry: ModelRegistry | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate every configured model on the protocol's folds, then publish the final MLP + stack bundle."""
    say = progress or (lambda _msg: None)
    say("building features")
    data = feature_dataset(history, cfg, feature_cfg)
    splits = make_splits(data, cfg)
    outcomes = []
    for split in splits:
        say(f"fold {split.name}: training {', '.join(cfg.models)}")
        outcome, _ = evaluate_split(data, split, cfg)
        outcomes.append(outcome)
    summary = mean_metrics(outcomes)
    report: dict[str, Any] = {
        "config": cfg.model_dump(mode="json"),
        "features": list(data.names),
        "rows": len(data.y),
        "frauds": int(data.y.sum()),
        "data_range": [str(data.timestamps.min()), str(data.timestamps.max())],
        "holdout_id": holdout_id(data, splits, cfg),
        "folds": [
            {"name": o.name, "metrics": o.metrics, "fit_seconds": o.fit_seconds, "best_params": o.best_params,
             "features": list(o.features)}
            for o in outcomes
        ],
        "mean_metrics": summary,
        "outcomes": outcomes,
        "version": None,
    }
    if registry is None:
        return report
    if not data.publishable:
        raise ConfigError("categorical_encoding adds columns the streamer cannot compute; publish without it")
    if "mlp" not in cfg.models and cfg.stack_scorer_model not in cfg.models:
        raise ConfigError(f"publishing needs 'mlp' or '{cfg.stack_scorer_model}' in models")
    say("training the models to publish")
    final_cfg = cfg.model_copy(update={"models": tuple(m for m in cfg.models if m in ("mlp", cfg.stack_scorer_model))})
    final_idx = final_training_rows(data, splits, cfg)
    if len(final_idx) == 0:
        raise ModelError("no rows in the final training window; the history is shorter than train + delay days")
    fitted = fit_fold(data, final_idx, final_cfg)
    report["final_fit_models"] = {n: type(m).__name__ for n, m in fitted.models.items()}
    report["published_features"] = list(fitted.names)
    from models.registry import running_feature_spec_hash

    bundle = build_bundle(fitted, data, outcomes[-1].thresholds, cfg, running_feature_spec_hash())
    bundle.drift_reference = drift_reference(fitted, data, final_idx, bundle, cfg)
    report["feature_importances"] = dict(zip(fitted.names, map(float, bundle.contribution_weights), strict=True))
    report["thresholds"] = bundle.thresholds
    report["policy"] = bundle.policy
    primary = {"stack": cfg.stack_scorer_model}.get(cfg.policy_scorer, cfg.policy_scorer)
    primary = primary if primary in summary else next(iter(summary))
    published_metrics = {"average_precision": summary[primary]["average_precision"], "primary_scorer": primary}
    published_metrics |= {f"{m}.{k}": v for m, vals in summary.items() for k, v in vals.items()}
    ts = data.timestamps.iloc[final_idx]
    report["published_data_range"] = [str(ts.min()), str(ts.max())]
    report["version"] = registry.publish(
        bundle,
        metrics=published_metrics,
        holdout_id=report["holdout_id"],
        data_range=(str(ts.min()), str(ts.max())),
        seed=cfg.seed,
        promote=False,
    )
    try:
        registry.promote(report["version"], force=force)
        report["promotion"] = "current"
    except PromotionRefused as exc:
        report["promotion"] = f"refused: {exc}"
    if "mlp" in fitted.models:
        report["mlp_history"] = fitted.models["mlp"].history_
    return report
