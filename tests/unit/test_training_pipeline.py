"""The training job end to end on a tiny synthetic history: config errors, no-fraud windows, publish, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig
from fraudstream.errors import ConfigError, ModelError
from models.registry import ModelRegistry
from tests.cli_helpers import run_cli
from training.config import load_training_config, training_config
from training.history import canonical_from_handbook
from training.pipeline import run_training
from training.report import markdown

FAST = {"model_params": {"mlp": {"epochs": 2, "batch_size": 128}, "random_forest": {"n_estimators": 10}},
        "prequential": {"n_folds": 2, "train_days": 5, "delay_days": 3, "test_days": 4}}


def handbook_style(days: int = 30, users: int = 60, fraud: bool = True, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * users * 3
    seconds = np.sort(rng.integers(0, days * 86400, n))
    amount = np.round(rng.gamma(2.0, 40.0, n), 2)
    is_fraud = (amount > 220) if fraud else np.zeros(n, dtype=bool)
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(n),
        "TX_DATETIME": pd.Timestamp("2018-04-01") + pd.to_timedelta(seconds, "s"),
        "CUSTOMER_ID": rng.integers(0, users, n),
        "TERMINAL_ID": rng.integers(0, 200, n),
        "TX_AMOUNT": amount,
        "TX_FRAUD": is_fraud.astype(int),
    })


def test_run_publishes_a_loadable_bundle(tmp_path: Path) -> None:
    cfg = training_config({**FAST, "models": ("logistic_regression", "mlp", "stack")})
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    report = run_training(canonical_from_handbook(handbook_style()), cfg, FeatureConfig(), registry=reg)
    assert report["promotion"] == "current" and reg.current_version() == report["version"]
    assert set(report["mean_metrics"]) == {"logistic_regression", "mlp", "stack", "blend"}
    assert report["mean_metrics"]["stack"]["roc_auc"] > 0.9  # amount > 220 is learnable
    loaded = reg.load(device="cpu")
    from features.spec import FEATURE_NAMES

    X = np.zeros((4, len(FEATURE_NAMES)))
    for scorer in ("mlp", "stack", "blend"):
        scores = loaded.score(X, scorer)
        assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    assert set(loaded.thresholds) == {"mlp", "stack", "blend"}


def test_no_frauds_in_the_training_window_is_one_clear_line() -> None:
    cfg = training_config({**FAST, "models": ("logistic_regression",)})
    with pytest.raises(ModelError, match=r"^no frauds in the training window test 2018-04-\d\d; widen") as err:
        run_training(canonical_from_handbook(handbook_style(fraud=False)), cfg, FeatureConfig())
    assert "\n" not in str(err.value)


def test_yaml_config_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("imbalance: undersample\nmodelz: [mlp]\n")
    with pytest.raises(ConfigError, match="modelz: Extra inputs are not permitted"):
        load_training_config(path)
    path.write_text("models: [svm_magic]\n")
    with pytest.raises(ConfigError, match="unknown models"):
        load_training_config(path)
    path.write_text("protocol: split_70_15_15\nimbalance: smote\nrfe_features: 5\n")
    assert load_training_config(path).rfe_features == 5


def test_seed_protocols_with_resampling_rfe_and_grid_search() -> None:
    history = canonical_from_handbook(handbook_style(days=20))
    cfg = training_config({
        **FAST, "protocol": "split_70_15_15", "imbalance": "smote", "rfe_features": 6, "clip_quantile": 0.01,
        "models": ("decision_tree", "stack"), "grid_search": {"decision_tree": {"max_depth": [2, 4]}},
        "model_params": {"stack": {"base_learners": ["dt", "lr"], "weighting": "both"}},
    })
    report = run_training(history, cfg, FeatureConfig())
    assert len(report["folds"]) == 1 and report["folds"][0]["best_params"]["decision_tree"]["max_depth"] in (2, 4)
    kept = report["folds"][0]["features"]
    assert len(kept) == 6 and set(kept) < set(report["features"])
    text = markdown(report)
    assert f"## RFE-selected features (6 of {len(report['features'])})" in text
    assert "- 70/15/15: " + ", ".join(kept) in text
    header = next(line for line in text.splitlines() if line.startswith("| model |"))
    row = next(line for line in text.splitlines() if line.startswith("| decision_tree |"))
    cells = dict(zip(header.split(" | "), row.split(" | "), strict=True))
    assert cells["accuracy"] == f"{report['mean_metrics']['decision_tree']['accuracy']:.3f}"
    cfg = training_config({**FAST, "protocol": "stratified_80_20", "imbalance": "undersample",
                           "threshold_policy": "fixed", "models": ("mlp",),
                           "model_params": {"mlp": {"epochs": 60, "batch_size": 16, "patience": 0}}})
    assert run_training(history, cfg, FeatureConfig())["mean_metrics"]["mlp"]["accuracy"] > 0.8


@pytest.mark.slow
def test_cli_train_writes_report_and_registry(tmp_path: Path) -> None:
    history = tmp_path / "history.parquet"
    handbook_style().to_parquet(history)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("models: [logistic_regression, mlp]\nstack_scorer_model: logistic_regression\n"
                   "model_params: {mlp: {epochs: 2}}\nprequential: {n_folds: 2, train_days: 5, delay_days: 3}\n")
    result = run_cli("train", "--history", str(history), "--config", str(cfg), "--registry", str(tmp_path / "reg"),
                     "--report-dir", str(tmp_path / "report"))
    assert result.code == 0, result.err
    assert "published" in result.out
    for name in ("report.json", "report.md", "roc.png", "precision_recall.png", "mlp_training.png"):
        assert (tmp_path / "report" / name).is_file(), name
    bad = run_cli("train", "--history", str(tmp_path / "missing.parquet"))
    assert bad.code == 2 and bad.err.strip().startswith("fraudstream: error: history file")
