"""LoadedModel: a verified registry version ready for batch scoring and per-feature alert reasons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fraudstream.errors import ModelError
from models.forward import numpy_forward_from_weights
from models.preprocess import Preprocessor

if TYPE_CHECKING:
    from models.attribution import Attribution
    from models.policy import ScoringPolicy

log = logging.getLogger(__name__)

Scorer = Literal["mlp", "stack", "blend"]


@dataclass(frozen=True)
class MLPWeights:
    weights: list[np.ndarray]
    output: str
    activation: str


def _flat_forest(model: Any) -> Any:
    """models.tree_kernels.FlatForest of a random forest, extra trees or decision tree (the model itself when the
    registry loaded it flat); None for other models."""
    if model is None:
        return None
    from models.tree_kernels import FlatForest, warm

    if not isinstance(model, FlatForest) and not FlatForest.supports(model):
        return None
    warm()  # the compiled kernels loaded now, not on the first batch or the first alert
    return model if isinstance(model, FlatForest) else FlatForest.of(model)


class LoadedModel:
    """Scores batches of feature vectors laid out as `feature_names` (the full input vector of training time).

    Columns the models do not use are ignored by `score` and get contribution 0.

    device: "cpu" (and "auto", which the streamer resolves before loading: models/device.py) serves the MLP from its
    exported weights with NumPy; "cuda" builds the same forward pass as an ONNX graph on onnxruntime-gpu's CUDA
    execution provider and routes model calls of at least `gpu_min_batch` rows to it, smaller ones to NumPy;
    "onnx-cpu" runs that graph on onnxruntime's CPU provider the same way (the bench and the tests, which have no
    GPU). No path imports TensorFlow or Keras; the stack is scored on the CPU on every device, a random forest, extra
    trees or decision tree in its slot by compiled code (models/tree_kernels.py: scikit-learn's probabilities bit
    for bit, without its per-tree overhead).
    """

    def __init__(
        self,
        *,
        version: str,
        input_names: tuple[str, ...],
        used_features: tuple[str, ...],
        thresholds: dict[str, float],
        preprocessor: Preprocessor,
        mlp_weights: MLPWeights | None,
        stack: Any,
        contribution_weights: np.ndarray,
        device: str = "cpu",
        gpu_min_batch: int = 1,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.feature_names = input_names
        self.used_features = used_features
        self.thresholds = {k: float(v) for k, v in thresholds.items()}
        self.preprocessor = preprocessor
        self.contribution_weights = contribution_weights
        self.manifest = manifest or {}
        self._used_index = np.array([input_names.index(n) for n in used_features], dtype=np.intp)
        self._mlp = mlp_weights
        self._stack = stack
        self._explainer: Any = None  # models.attribution.ModelExplainer of the stack, built on the first alert
        self._flat_stack = _flat_forest(stack)  # a forest in the stack slot is scored by compiled code
        self._onnx: Callable[[np.ndarray], np.ndarray] | None = None
        self._onnx_min_rows = int(gpu_min_batch)  # calls of fewer rows stay on NumPy
        self.device = "CPU"
        if device not in ("auto", "cpu", "cuda", "onnx-cpu"):
            raise ModelError(f"unknown model device '{device}'; use cpu, cuda or onnx-cpu")
        if mlp_weights is not None and device in ("cuda", "onnx-cpu"):
            from models.onnx_mlp import OnnxMLP  # onnxruntime: only for these devices

            self._onnx = OnnxMLP(mlp_weights.weights, mlp_weights.output, mlp_weights.activation,
                                 "cuda" if device == "cuda" else "cpu")
            self.device = "cuda:0" if device == "cuda" else "onnx-cpu"
        log.info("loaded model %s (MLP on %s)", version, self.device)

    @property
    def scorers(self) -> tuple[str, ...]:
        names = [n for n, m in (("mlp", self._mlp), ("stack", self._stack)) if m is not None]
        return tuple(names + (["blend"] if len(names) == 2 else []))

    def _prepared(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ModelError(f"score() needs a 2-D batch, got shape {X.shape}")
        if X.shape[1] == len(self.feature_names):
            X = X[:, self._used_index]
        elif X.shape[1] != len(self.used_features):
            raise ModelError(
                f"batch has {X.shape[1]} columns; model {self.version} expects {len(self.feature_names)} "
                f"(features.spec.FEATURE_NAMES at training time)"
            )
        return self.preprocessor.transform(X)

    def _mlp_scores(self, Z: np.ndarray) -> np.ndarray:
        if self._mlp is None:
            raise self._missing("mlp", "MLP", "stack")
        if self._onnx is not None and Z.shape[0] >= self._onnx_min_rows:
            return self._onnx(Z)
        return numpy_forward_from_weights(self._mlp.weights, Z, self._mlp.output, self._mlp.activation)

    def _missing(self, part: str, label: str, other: str) -> ModelError:
        if part in self.manifest.get("scorers", ()):
            return ModelError(
                f"model {self.version} was loaded without its {label} (registry.load(scorers=...)); load it for "
                f"scorer '{part}'"
            )
        return ModelError(f"model {self.version} has no {label}; choose scorer '{other}'")

    def _stack_scores(self, Z: np.ndarray) -> np.ndarray:
        if self._stack is None:
            raise self._missing("stack", "stack", "mlp")
        if self._flat_stack is not None:  # the forest scored by compiled code, or loaded as such
            return np.asarray(self._flat_stack.predict(Z))  # == predict_proba(Z)[:, 1], bit for bit
        return np.asarray(self._stack.predict_proba(Z)[:, 1], dtype=np.float64)

    def score(self, X: np.ndarray, scorer: Scorer = "mlp", blend_mlp_weight: float = 0.5) -> np.ndarray:
        """Fraud probability per row, one vectorised call per batch."""
        Z = self._prepared(X)
        if Z.shape[0] == 0:
            return np.zeros(0)
        if scorer == "mlp":
            return self._mlp_scores(Z)
        if scorer == "stack":
            return self._stack_scores(Z)
        if scorer == "blend":
            w = float(blend_mlp_weight)
            return w * self._mlp_scores(Z) + (1.0 - w) * self._stack_scores(Z)
        raise ModelError(f"unknown scorer '{scorer}'; use mlp, stack or blend")

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """n x len(feature_names): z-score against the training mean/std times the feature's normalised importance.

        Positive = above the training mean. Unused features get 0. Pick the top |contribution| for alert reasons.
        """
        X = np.asarray(X, dtype=np.float64)
        full = X.shape[1] == len(self.feature_names)
        used = X[:, self._used_index] if full else X
        z = self.preprocessor.zscores(used) * self.contribution_weights
        if not full:
            return np.asarray(z)
        out = np.zeros_like(X)
        out[:, self._used_index] = z
        return out

    @property
    def policy(self) -> ScoringPolicy:
        """The scoring policy training stored in the manifest (models/policy.py; legacy default for old ones)."""
        from models.policy import policy_of_manifest

        return policy_of_manifest(self.manifest or {"thresholds": self.thresholds, "scorers": list(self.scorers)})

    def serving_policy(self, scorer: str | None = None, blend_mlp_weight: float | None = None) -> ScoringPolicy:
        """The policy with explicit settings applied (None: the manifest's); refuses an uncalibrated blend weight."""
        from models.policy import resolve_policy

        return resolve_policy(self.version, self.policy, self.thresholds, scorer, blend_mlp_weight)

    def baseline(self) -> np.ndarray:
        """The attributions' reference point in the models' (preprocessed) space: the training mean row."""
        pre = self.preprocessor
        raw = np.where(np.isfinite(pre.means), pre.means, pre.center)
        return np.asarray(pre.transform(raw[None, :])[0])

    def attributions(
        self, X: np.ndarray, scorer: Scorer = "mlp", blend_mlp_weight: float = 0.5, mlp_method: str = "deeplift"
    ) -> Attribution:
        """Per-row attributions of `score(X, scorer, blend_mlp_weight)`: base + values.sum(1) == the score
        (probability space; models/attribution.py). Only for the rows to explain (the alerted ones): its cost is
        tens to hundreds of model evaluations per row. values has X's width (unused features get 0)."""
        from models import attribution as att

        X = np.asarray(X, dtype=np.float64)
        Z = self._prepared(X)
        b = self.baseline()
        parts: dict[str, att.Attribution] = {}
        if scorer in ("mlp", "blend"):
            if self._mlp is None:
                raise self._missing("mlp", "MLP", "stack")
            mlp = self._mlp
            parts["mlp"] = att.to_probability(
                att.mlp_attribution(mlp.weights, Z, b, mlp.output, mlp.activation, mlp_method)
            )
        if scorer in ("stack", "blend"):
            if self._stack is None:
                raise self._missing("stack", "stack", "mlp")
            if self._explainer is None:
                self._explainer = att.ModelExplainer(self._stack, b, self._flat_stack)  # flattened once, at load
            parts["stack"] = self._explainer.explain(Z)
        if scorer == "blend":
            result = att.blend(parts["mlp"], parts["stack"], float(blend_mlp_weight))
        elif scorer in parts:
            result = parts[scorer]
        else:
            raise ModelError(f"unknown scorer '{scorer}'; use mlp, stack or blend")
        if X.shape[1] != len(self.feature_names):
            return result
        full = np.zeros_like(X)
        full[:, self._used_index] = result.values
        return att.Attribution(full, result.base, result.space, result.method, result.residual)
