"""Training stores the drift reference with the model: the served scorers' scores and the top features by
importance, binned at the final training rows' quantiles, in the signed manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features.config import FeatureConfig
from models.registry import ModelRegistry
from streamer.drift import DriftReference, psi
from tests.unit.test_training_pipeline import FAST, handbook_style
from training.config import training_config
from training.history import canonical_from_handbook
from training.pipeline import run_training


def test_the_published_version_carries_a_reference_of_its_scores_and_top_features(tmp_path: Path) -> None:
    cfg = training_config({**FAST, "models": ("mlp", "random_forest"), "drift_top_features": 3, "drift_bins": 8})
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    report = run_training(canonical_from_handbook(handbook_style()), cfg, FeatureConfig(), registry=reg)
    loaded = reg.load(report["version"])
    ref = DriftReference.from_manifest(loaded.manifest["drift_reference"])
    assert set(ref.scores) == {"mlp", "stack", "blend"}
    importances = report["feature_importances"]
    top = sorted(importances, key=lambda n: -importances[n])[:3]
    assert [f.name for f in ref.features] == top
    assert ref.rows > 0 and all(len(f.edges) <= 7 for f in (*ref.features, *ref.scores.values()))
    assert all(abs(part.expected.sum() - 1.0) < 1e-9 for part in (*ref.features, *ref.scores.values()))
    # the served scorer's scores on all-zero vectors are far from those of the training rows
    from features.spec import FEATURE_NAMES

    X = np.zeros((500, len(FEATURE_NAMES)))
    policy_scorer = loaded.manifest["policy"]["scorer"] if "policy" in loaded.manifest else "blend"
    zeros = loaded.score(X, policy_scorer, cfg.blend_mlp_weight)
    assert psi(ref.scores[policy_scorer].expected, ref.scores[policy_scorer].counts(zeros)) > 0.2
