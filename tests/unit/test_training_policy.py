"""`fraudstream train` writes one scoring policy into the signed manifest (scorer, blend weight, threshold, alert
budget), its threshold calibrated for exactly that scorer and weight; the loaded model serves it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.config import FeatureConfig
from fraudstream.errors import ConfigError
from models.registry import ModelRegistry
from models.signing import RegistryTrust
from tests.unit.test_training_pipeline import FAST, handbook_style
from training.config import training_config
from training.history import canonical_from_handbook
from training.pipeline import run_training

KEY = "a-test-signing-key-of-32-bytes!!"


def test_the_default_policy_is_the_tuned_blend_calibrated_for_its_weight(tmp_path: Path) -> None:
    cfg = training_config({**FAST, "models": ("mlp", "random_forest"), "alerts_per_day": 20})
    assert cfg.stack_scorer_model == "random_forest" and cfg.policy_scorer == "blend"
    reg = ModelRegistry(tmp_path, trust=RegistryTrust.of(KEY))
    report = run_training(canonical_from_handbook(handbook_style()), cfg, FeatureConfig(), registry=reg)
    manifest = json.loads((tmp_path / "versions" / report["version"] / "manifest.json").read_text())
    policy = manifest["policy"]
    assert policy["scorer"] == "blend" and policy["blend_mlp_weight"] == 0.25 and policy["alerts_per_day"] == 20
    last = report["outcomes"][-1]
    blend = 0.25 * last.scores["mlp"] + 0.75 * last.scores["random_forest"]
    np.testing.assert_allclose(last.scores["blend"], blend)
    assert policy["threshold"] == manifest["thresholds"]["blend"] == last.thresholds["blend"]
    loaded = reg.load()  # verified against the signature, policy included
    served = loaded.serving_policy(None, None)
    assert (served.scorer, served.blend_mlp_weight, served.threshold) == ("blend", 0.25, policy["threshold"])
    with pytest.raises(ConfigError, match="calibrated for"):
        loaded.serving_policy(None, 0.5)
    # a worker started with another blend weight stops at start-up with that one line (exit 2 from the CLI)
    from fraudstream.settings import build_settings
    from streamer.runtime import build_holder

    settings = build_settings({"registry": {"path": str(tmp_path), "signing_key": KEY},
                               "streamer": {"blend_mlp_weight": 0.5, "device": "cpu"}}, environ={})  # fmt: skip
    with pytest.raises(ConfigError, match=r"^FRAUD_STREAMER__BLEND_MLP_WEIGHT=0.5 differs .* calibrated for"):
        build_holder(settings)
    (tmp_path / "versions" / report["version"] / "manifest.json").write_text(
        json.dumps({**manifest, "policy": {**policy, "blend_mlp_weight": 0.5}}, indent=2, sort_keys=True))
    with pytest.raises(Exception, match="signature"):
        reg.load()  # a policy edited after signing does not load


def test_a_policy_scorer_that_is_not_trained_is_refused() -> None:
    with pytest.raises(ConfigError, match="scorer blend needs mlp in models"):
        training_config({"models": ("random_forest",), "scorer": "blend"})
