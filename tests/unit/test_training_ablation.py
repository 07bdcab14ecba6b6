"""Feature-group ablation (training/ablation.py, `fraudstream tune --ablation`) on a tiny synthetic history: one row
per group plus all features, the dropped group's columns absent from every fitted model, the table in tune.md/.json;
and the log1p preprocessing option (training config `log_heavy_tails`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import training.pipeline as pipeline
from features.config import FeatureConfig
from features.spec import FEATURE_NAMES
from models.preprocess import Preprocessor
from tests.unit.test_training_tune import END, PROTOCOL, _history
from training.ablation import FEATURE_GROUPS
from training.config import training_config
from training.tune import tune, write_result


def test_groups_partition_the_feature_vector() -> None:
    flat = [c for cols in FEATURE_GROUPS.values() for c in cols]
    assert len(flat) == len(set(flat)) and set(flat) == set(FEATURE_NAMES)


def test_ablation_refits_the_choice_without_each_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[tuple[tuple[str, ...], dict[str, int]]] = []
    real_fit = pipeline.fit_fold

    def spy(data: Any, idx: np.ndarray, cfg: Any, out: Any = None) -> Any:
        fitted = real_fit(data, idx, cfg, out)
        fits.append((fitted.names, {m: int(model.n_features_in_) for m, model in fitted.models.items()}))
        return fitted

    monkeypatch.setattr(pipeline, "fit_fold", spy)
    grid = {
        "models": {
            "random_forest": {"n_estimators": [5], "max_depth": [4]},
            "mlp": {"epochs": [2], "batch_size": [128]},
        },
        "blend_weights": [0.5],
    }
    result = tune(_history(), training_config(PROTOCOL), FeatureConfig(), grid, validation_end=END, ablation=True)
    ab = result["ablation"]
    rows = ab["table"]
    assert [r["candidate"] for r in rows] == ["all features"] + [f"without {g}" for g in FEATURE_GROUPS]
    assert ab["candidate_scorer"] == result["choice"]["scorer"]
    n_folds = 2
    ablation_fits = fits[-len(rows) * n_folds :]  # after the grid's own fits
    for i, row in enumerate(rows):
        dropped = set(FEATURE_GROUPS[row["group"]]) if row["group"] else set()
        assert set(row["dropped"]) == dropped and row["n_features"] == len(FEATURE_NAMES) - len(dropped)
        for names, widths in ablation_fits[i * n_folds : (i + 1) * n_folds]:
            assert not dropped & set(names) and set(names) | dropped == set(FEATURE_NAMES)
            assert set(widths.values()) == {len(FEATURE_NAMES) - len(dropped)}  # the models saw only those columns
        assert len(row["folds"]) == n_folds and row["verdict"] in (("-",) if i == 0 else ("keep", "drop"))
        deltas = [
            f["average_precision"] - b["average_precision"] for f, b in zip(row["folds"], rows[0]["folds"], strict=True)
        ]
        assert row["delta_average_precision"]["mean"] == pytest.approx(float(np.mean(deltas)))
        assert row["folds_improved_without"] == sum(d > 0 for d in deltas)
    assert rows[0]["delta_average_precision"]["mean"] == 0.0
    dropped_by_verdict = {c for r in rows if r["verdict"] == "drop" for c in r["dropped"]}
    assert ab["features_kept"] == [n for n in FEATURE_NAMES if n not in dropped_by_verdict]

    json_path, md_path = write_result(result, tmp_path)
    saved = json.loads(json_path.read_text())
    assert [r["candidate"] for r in saved["ablation"]["table"]] == [r["candidate"] for r in rows]
    text = md_path.read_text()
    assert "## Feature ablation on the validation folds" in text
    assert all(f"| without {g} | " in text for g in FEATURE_GROUPS)


def test_log_heavy_tails_compresses_only_columns_outside_unit_range() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.gamma(2.0, 400.0, 200), rng.integers(0, 2, 200), rng.normal(0, 0.3, 200).clip(-1, 1)])
    X[3, 0] = np.nan
    pre = Preprocessor.fit(X, log_heavy_tails=True)
    assert pre.log_mask is not None and pre.log_mask.tolist() == [True, False, False]
    filled = np.where(np.isfinite(X), X, np.nanmean(X, axis=0))
    logged = filled.copy()
    logged[:, 0] = np.log1p(filled[:, 0])
    expected = (logged - logged.mean(axis=0)) / logged.std(axis=0)
    np.testing.assert_allclose(pre.transform(X), expected, atol=1e-12)
    again = Preprocessor.from_json(pre.to_json())
    np.testing.assert_array_equal(again.transform(X), pre.transform(X))
    np.testing.assert_allclose(Preprocessor.fit(-X, log_heavy_tails=True).transform(-X)[:, 0], -expected[:, 0])
    plain = Preprocessor.from_json(Preprocessor.fit(X).to_json())  # off: no mask stored, transform unchanged
    assert plain.log_mask is None and "log_mask" not in Preprocessor.fit(X).to_json()
    cfg = training_config({"log_heavy_tails": True})
    from training.prepare import fit_preprocessor

    assert fit_preprocessor(X, cfg).log_mask is not None and fit_preprocessor(X, training_config()).log_mask is None
