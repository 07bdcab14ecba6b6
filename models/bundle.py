"""ModelBundle: what one training run publishes (MLP, stack, preprocessing, thresholds, reason weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraudstream.errors import ModelError
from models.mlp import FraudMLP
from models.preprocess import Preprocessor

SCORERS = ("mlp", "stack", "blend")


@dataclass
class ModelBundle:
    """Everything the streamer needs to score a feature vector and explain an alert.

    input_names: the order of the vector the caller passes (features.spec.FEATURE_NAMES at training time).
    used_features: the subset (in input order) the models were trained on; the preprocessor covers these columns.
    contribution_weights: one non-negative weight per used feature (normalised importances) for reasons.
    """

    input_names: tuple[str, ...]
    used_features: tuple[str, ...]
    preprocessor: Preprocessor
    mlp: FraudMLP | None
    stack: Any  # a fitted scikit-learn classifier with predict_proba (StackingEnsemble by default)
    thresholds: dict[str, float]
    feature_spec_hash: str
    contribution_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    blend_mlp_weight: float = 0.5
    #: the scoring policy (models/policy.py ScoringPolicy.as_manifest()); None: the manifest gets none (legacy)
    policy: dict[str, Any] | None = None
    #: the drift reference (streamer/drift.py DriftReference.as_manifest()); None: drift is not watched (legacy)
    drift_reference: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        missing = [name for name in self.used_features if name not in self.input_names]
        if missing:
            raise ModelError(f"used features {missing} are not in the input vector names")
        if self.mlp is None and self.stack is None:
            raise ModelError("a model bundle needs at least one of an MLP and a stack")
        if self.contribution_weights.size == 0:
            self.contribution_weights = np.full(len(self.used_features), 1.0 / max(len(self.used_features), 1))
        if self.contribution_weights.shape != (len(self.used_features),):
            raise ModelError("contribution_weights needs one weight per used feature")

    @property
    def used_index(self) -> np.ndarray:
        return np.array([self.input_names.index(name) for name in self.used_features], dtype=np.intp)
