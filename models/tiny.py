"""A tiny real model (a logistic regression as the bundle's `stack`) published to a real registry, for smoke runs:
the benchmarks, the tests, a worker's start-up check. Fit in well under a second on synthetic vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The tiny model looks at these columns only; fraud = large amount or amount far above the user's mean.
TINY_FEATURES = ("amount", "amount_ratio_mean_30d", "new_merchant", "dist_prev_km")


def publish_tiny_model(
    root: Path,
    *,
    threshold: float = 0.5,
    seed: int = 0,
    signing_key: str | None = None,
    drift_reference: dict[str, Any] | None = None,
) -> str:
    """Fit a logistic regression (as the bundle's `stack`) on synthetic vectors and publish it; returns the version.

    Unsigned (the tests' registries allow it) unless signing_key is given. drift_reference: stored in the manifest
    (streamer/drift.py), for the drift tests; none by default, like a version published before drift was watched."""
    from sklearn.linear_model import LogisticRegression

    from features.spec import FEATURE_NAMES, feature_spec_hash
    from models.bundle import ModelBundle
    from models.preprocess import Preprocessor
    from models.registry import ModelRegistry
    from models.signing import RegistryTrust

    rng = np.random.default_rng(seed)
    n = 4000
    X = np.zeros((n, len(FEATURE_NAMES)))
    cols = {name: FEATURE_NAMES.index(name) for name in TINY_FEATURES}
    X[:, cols["amount"]] = rng.lognormal(3.5, 1.0, n)
    X[:, cols["amount_ratio_mean_30d"]] = rng.lognormal(0.0, 0.6, n)
    X[:, cols["new_merchant"]] = rng.integers(0, 2, n)
    X[:, cols["dist_prev_km"]] = rng.exponential(20.0, n)
    y = ((X[:, cols["amount"]] > 220) | (X[:, cols["amount_ratio_mean_30d"]] > 4)).astype(int)
    used = X[:, [cols[name] for name in TINY_FEATURES]]
    pre = Preprocessor.fit(used)
    clf = LogisticRegression(max_iter=500).fit(pre.transform(used), y)
    bundle = ModelBundle(
        input_names=FEATURE_NAMES,
        used_features=TINY_FEATURES,
        preprocessor=pre,
        mlp=None,
        stack=clf,
        thresholds={"stack": threshold},
        feature_spec_hash=feature_spec_hash(),
        contribution_weights=np.abs(clf.coef_[0]) / np.abs(clf.coef_[0]).sum(),
        drift_reference=drift_reference,
    )
    trust = RegistryTrust.of(signing_key, allow_unsigned=signing_key is None)
    return ModelRegistry(root, trust=trust).publish(
        bundle,
        metrics={"average_precision": 0.9},
        holdout_id="tiny",
        data_range=("2024-01-01", "2024-01-02"),
        seed=seed,
        force=True,
    )
