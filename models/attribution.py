"""Per-row attributions of the scorer in use that sum, with a base value, to the score the alert carries.

Every function here returns an `Attribution`: `values` (n x F, one column per feature the models use, in the
preprocessed space the models see) and `base` (n,), with `base + values.sum(axis=1) == output` to float rounding
(~1e-12; the tests hold it to 1e-6) in the stated `space`:

- MLP (its exported Dense weights, NumPy only): integrated gradients of the logit from the baseline (the training
  mean, i.e. the preprocessed mean row) along the straight path, `steps` midpoints, vectorised over rows x steps,
  with the completeness residual (how far the Riemann sum is from logit(x) - logit(baseline); reported as
  `residual`) spread over the features in proportion to |attribution|; then into probability space through the
  output sigmoid by DeepLIFT's rescale rule (each attribution times (p(x) - p(b)) / (logit(x) - logit(b))).
- Tree models: TreeSHAP (path-dependent, exact): compiled here for a random forest, extra trees or decision tree
  (models/tree_kernels.py, equal to the `shap` package's values to float rounding), the `shap` package for
  gradient boosting, whose log-odds values are rescaled into probability space the same way.
- Any other fitted classifier (the stack's SVM and scikit-learn MLP base learners): baseline Shapley values sampled
  over `permutations` fixed feature orders. Each order telescopes from f(baseline) to f(x), so the sum is exact for
  any model whatever the number of orders (only the split between features is an estimate).
- StackingEnsemble with a linear meta-learner: logit(stack) = intercept + sum_j coef_j * weight_j * P_j(x), so the
  base learners' probability-space attributions combine through those coefficients into exact logit-space
  attributions, then into probability space by the rescale rule.
- blend: w * mlp + (1 - w) * stack, both in probability space.

This module imports scikit-learn and shap only inside the functions that explain those models: a worker that
scores with the MLP alone never imports them (tests/unit/test_models_lean_worker.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Space = str  # "probability" or "logit"

#: Integration steps of the MLP's integrated gradients (midpoint rule). The completeness correction makes the sum
#: exact at any count; more steps make the per-feature split closer to the integral.
IG_STEPS = 64
#: Feature orders of the sampled baseline Shapley values (models with no exact method here).
SHAPLEY_PERMUTATIONS = 8
_ROWS_PER_CHUNK = 256  # rows x steps x width stays a few MB


@dataclass(frozen=True)
class Attribution:
    values: np.ndarray  # n x F
    base: np.ndarray  # n
    space: Space
    method: str
    residual: float = 0.0  # largest |completeness residual| corrected (IG only)

    @property
    def output(self) -> np.ndarray:
        return np.asarray(self.base + self.values.sum(axis=1))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))))


def to_probability(att: Attribution) -> Attribution:
    """Logit-space attributions through the output sigmoid by DeepLIFT's rescale rule: the sum stays exact."""
    if att.space == "probability":
        return att
    logit_x, logit_b = att.output, att.base
    p_x, p_b = _sigmoid(logit_x), _sigmoid(logit_b)
    delta = logit_x - logit_b
    small = np.abs(delta) < 1e-9
    slope = np.where(small, p_x * (1.0 - p_x), (p_x - p_b) / np.where(small, 1.0, delta))
    values = att.values * slope[:, None]
    # the rescaled sum equals p_x - p_b up to float rounding; put that last ulp on the largest feature
    fix = (p_x - p_b) - values.sum(axis=1)
    values[np.arange(len(values)), np.argmax(np.abs(values), axis=1)] += fix
    return Attribution(values, p_b, "probability", att.method + " + rescale(sigmoid)", att.residual)


def _mlp_forward(weights: list[np.ndarray], X: np.ndarray, output: str, activation: str,
                 grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The logit (sigmoid output: h[:, 0]; softmax: h[:, 1] - h[:, 0]) and, if asked, its input gradient."""
    h = X
    n_layers = len(weights) // 2
    derivs: list[np.ndarray] = []
    for i in range(n_layers):
        h = h @ weights[2 * i] + weights[2 * i + 1]
        if i < n_layers - 1:
            if activation == "relu":
                derivs.append((h > 0).astype(np.float64))
                h = np.maximum(h, 0.0)
            else:
                h = np.tanh(h)
                derivs.append(1.0 - h * h)
    if output == "sigmoid":
        logit, g = h[:, 0], np.zeros_like(h)
        g[:, 0] = 1.0
    else:
        logit, g = h[:, 1] - h[:, 0], np.zeros_like(h)
        g[:, 0], g[:, 1] = -1.0, 1.0
    if not grad:
        return logit, None
    for i in range(n_layers - 1, -1, -1):
        g = g @ weights[2 * i].T
        if i > 0:
            g = g * derivs[i - 1]
    return logit, g


def mlp_logit(weights: list[np.ndarray], X: np.ndarray, output: str, activation: str = "relu") -> np.ndarray:
    return _mlp_forward(weights, np.asarray(X, dtype=np.float64), output, activation, grad=False)[0]


def mlp_integrated_gradients(
    weights: list[np.ndarray], Z: np.ndarray, baseline: np.ndarray, output: str, activation: str = "relu",
    steps: int = IG_STEPS,
) -> Attribution:
    """Integrated gradients of the MLP's logit, vectorised over rows and steps; exact sum after the correction."""
    Z = np.asarray(Z, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    alphas = (np.arange(steps, dtype=np.float64) + 0.5) / steps
    values = np.empty_like(Z)
    for lo in range(0, len(Z), _ROWS_PER_CHUNK):
        D = Z[lo : lo + _ROWS_PER_CHUNK] - b
        path = (b + alphas[:, None, None] * D[None, :, :]).reshape(-1, Z.shape[1])
        _, g = _mlp_forward(weights, path, output, activation, grad=True)
        assert g is not None
        values[lo : lo + len(D)] = g.reshape(steps, len(D), -1).mean(axis=0) * D
    logit_x = mlp_logit(weights, Z, output, activation)
    logit_b = float(mlp_logit(weights, b[None, :], output, activation)[0])
    residual = (logit_x - logit_b) - values.sum(axis=1)
    share = np.abs(values)
    total = share.sum(axis=1, keepdims=True)
    share = np.where(total > 0, share / np.where(total > 0, total, 1.0), 1.0 / Z.shape[1])
    values = values + residual[:, None] * share
    worst = float(np.max(np.abs(residual))) if len(residual) else 0.0
    return Attribution(values, np.full(len(Z), logit_b), "logit", f"integrated gradients ({steps} steps)", worst)


def mlp_deeplift(
    weights: list[np.ndarray], Z: np.ndarray, baseline: np.ndarray, output: str, activation: str = "relu"
) -> Attribution:
    """DeepLIFT's rescale rule on the MLP's logit from the baseline: every hidden unit's multiplier is
    (a(x) - a(b)) / (z(x) - z(b)) (its derivative where z(x) == z(b)), chained back through the Dense weights.
    Sums to logit(x) - logit(b) exactly (summation to delta), whatever the depth; one forward pass of the rows
    and the baseline and one backward pass, where integrated gradients take `steps` of each. With one hidden layer
    it equals integrated gradients in the limit of steps (each unit's pre-activation is linear along the path).

    >>> w = [np.array([[1.0, -1.0], [2.0, 0.5]]), np.zeros(2), np.array([[1.0], [1.0]]), np.zeros(1)]
    >>> att = mlp_deeplift(w, np.array([[1.0, 1.0]]), np.zeros(2), "sigmoid")
    >>> att.values.round(6).tolist(), float(att.output[0])
    ([[1.0, 2.0]], 3.0)
    """
    Z = np.asarray(Z, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)[None, :]
    n_layers = len(weights) // 2
    hx, hb = Z, b
    slopes: list[np.ndarray] = []
    for i in range(n_layers):
        zx, zb = hx @ weights[2 * i] + weights[2 * i + 1], hb @ weights[2 * i] + weights[2 * i + 1]
        if i == n_layers - 1:
            hx, hb = zx, zb
            break
        ax, ab = (np.maximum(zx, 0.0), np.maximum(zb, 0.0)) if activation == "relu" else (np.tanh(zx), np.tanh(zb))
        dz = zx - zb
        near = np.abs(dz) < 1e-12
        if activation == "relu":
            local = (zx > 0).astype(np.float64)
        else:
            local = 1.0 - ax * ax
        slopes.append(np.where(near, local, (ax - ab) / np.where(near, 1.0, dz)))
        hx, hb = ax, ab
    if output == "sigmoid":
        logit_x, logit_b, g = hx[:, 0], float(hb[0, 0]), np.zeros_like(hx)
        g[:, 0] = 1.0
    else:
        logit_x, logit_b, g = hx[:, 1] - hx[:, 0], float(hb[0, 1] - hb[0, 0]), np.zeros_like(hx)
        g[:, 0], g[:, 1] = -1.0, 1.0
    for i in range(n_layers - 1, -1, -1):
        g = g @ weights[2 * i].T
        if i > 0:
            g = g * slopes[i - 1]
    values = g * (Z - b)
    residual = (logit_x - logit_b) - values.sum(axis=1)  # float rounding only; on the largest feature
    if len(values):
        values[np.arange(len(values)), np.argmax(np.abs(values), axis=1)] += residual
    worst = float(np.max(np.abs(residual))) if len(residual) else 0.0
    return Attribution(values, np.full(len(Z), logit_b), "logit", "DeepLIFT (rescale)", worst)


MLP_METHODS = ("deeplift", "integrated_gradients")


def mlp_attribution(
    weights: list[np.ndarray], Z: np.ndarray, baseline: np.ndarray, output: str, activation: str = "relu",
    method: str = "deeplift",
) -> Attribution:
    """The MLP's logit-space attributions by `method` (MLP_METHODS)."""
    if method == "deeplift":
        return mlp_deeplift(weights, Z, baseline, output, activation)
    if method == "integrated_gradients":
        return mlp_integrated_gradients(weights, Z, baseline, output, activation)
    raise ValueError(f"unknown MLP attribution method {method!r}; use one of {', '.join(MLP_METHODS)}")


def _positive_proba(model: Any, X: np.ndarray) -> np.ndarray:
    from models.stacking import base_scores

    return np.asarray(base_scores(model, X), dtype=np.float64)


_TREE_PROBA = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")
_TREE_LOGIT = ("HistGradientBoostingClassifier", "GradientBoostingClassifier")


def is_tree_model(model: Any) -> bool:
    """A scikit-learn tree model, or a forest already flattened (models.tree_kernels.FlatForest)."""
    return type(model).__name__ in (*_TREE_PROBA, *_TREE_LOGIT, "FlatForest")


def tree_shap(model: Any, Z: np.ndarray, explainer: Any = None) -> Attribution:
    """TreeSHAP of a scikit-learn tree model (shap.TreeExplainer, exact, path-dependent)."""
    if explainer is None:
        explainer = tree_explainer(model)
    ex = explainer(np.asarray(Z, dtype=np.float64), check_additivity=False)
    values, base = np.asarray(ex.values, dtype=np.float64), np.asarray(ex.base_values, dtype=np.float64)
    if values.ndim == 3:  # one slice per class: the positive class
        values, base = values[..., -1], base[..., -1]
    space = "logit" if type(model).__name__ in _TREE_LOGIT else "probability"
    return Attribution(values, np.broadcast_to(base, (len(values),)).copy(), space, "TreeSHAP")


def _import_shap() -> Any:
    """shap without its plotting half: shap imports matplotlib only if it can (its __init__ guards the import), and
    a worker has no use for plots, so matplotlib is hidden while shap is first imported (unless already loaded)."""
    import sys

    if "shap" in sys.modules or "matplotlib" in sys.modules:
        import shap

        return shap
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  # makes `import matplotlib` raise ImportError
    try:
        import shap
    finally:
        if sys.modules.get("matplotlib", 0) is None:
            del sys.modules["matplotlib"]
    return shap


def tree_explainer(model: Any) -> Any:
    """shap.TreeExplainer: only when a tree model is explained, never on an MLP-only worker."""
    return _import_shap().TreeExplainer(model)


def baseline_shapley(
    predict: Any, Z: np.ndarray, baseline: np.ndarray, permutations: int = SHAPLEY_PERMUTATIONS, seed: int = 0
) -> Attribution:
    """Baseline Shapley values sampled over fixed feature orders: one predict call over every hybrid row."""
    Z = np.asarray(Z, dtype=np.float64)
    n, F = Z.shape
    b = np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(F) for _ in range(permutations)])  # P x F
    # reveal[p, k, f]: feature f comes from x after k steps of order p (k = 0..F)
    rank = np.argsort(orders, axis=1)  # P x F: the step at which each feature is revealed
    reveal = rank[:, None, :] < np.arange(F + 1)[None, :, None]  # P x (F+1) x F
    hybrid = np.where(reveal[None], Z[:, None, None, :], b)  # n x P x (F+1) x F
    f = np.asarray(predict(hybrid.reshape(-1, F)), dtype=np.float64).reshape(n, permutations, F + 1)
    steps = np.diff(f, axis=2)  # n x P x F: the gain of the k-th revealed feature
    gains = np.take_along_axis(steps, np.broadcast_to(rank[None], (n, permutations, F)), axis=2)
    values = gains.mean(axis=1)
    base = f[:, 0, 0]
    # each order telescopes to f(x) - f(b); their mean too, up to float rounding
    values[np.arange(n), np.argmax(np.abs(values), axis=1)] += (f[:, 0, F] - base) - values.sum(axis=1)
    return Attribution(values, base, "probability", f"baseline Shapley ({permutations} orders)")


class ModelExplainer:
    """Explains one fitted scikit-learn classifier (a tree, a StackingEnsemble, or any other) in probability space.

    Built once per loaded model (the TreeSHAP explainers are built on first use and kept).
    """

    def __init__(self, model: Any, baseline: np.ndarray, compiled: Any = None) -> None:
        """compiled: the model's models.tree_kernels.FlatForest when the caller has built it already."""
        self.model = model
        self.baseline = np.asarray(baseline, dtype=np.float64)
        self._trees: dict[int, Any] = {} if compiled is None else {id(model): compiled}

    def _tree(self, model: Any, Z: np.ndarray) -> Attribution:
        from models.tree_kernels import FlatForest

        key = id(model)
        if key not in self._trees:
            if isinstance(model, FlatForest):
                self._trees[key] = model
            else:
                self._trees[key] = FlatForest.of(model) if FlatForest.supports(model) else tree_explainer(model)
        explainer = self._trees[key]
        if isinstance(explainer, FlatForest):
            values, base = explainer.shap(Z)
            return Attribution(values, base, "probability", "TreeSHAP")
        return to_probability(tree_shap(model, Z, explainer))

    def _single(self, model: Any, Z: np.ndarray) -> Attribution:
        if is_tree_model(model):
            return self._tree(model, Z)
        if type(model).__name__ == "LogisticRegression" and len(getattr(model, "classes_", ())) == 2:
            coef = np.ravel(model.coef_)
            values = (Z - self.baseline) * coef
            base = float(model.intercept_[0] + self.baseline @ coef)
            return to_probability(Attribution(values, np.full(len(Z), base), "logit", "exact linear"))
        return baseline_shapley(lambda X: _positive_proba(model, X), Z, self.baseline)

    def stack_logit(self, Z: np.ndarray) -> Attribution | None:
        """A StackingEnsemble with a linear meta-learner, in its meta-learner's logit space; else None."""
        stack = self.model
        meta = getattr(stack, "meta_", None)
        if meta is None or type(stack).__name__ != "StackingEnsemble" or type(meta).__name__ != "LogisticRegression":
            return None
        if len(getattr(meta, "classes_", ())) != 2 or len(stack.classes_) != 2:
            return None
        coef = np.ravel(meta.coef_) * np.asarray(stack.weights_, dtype=np.float64)
        values = np.zeros_like(Z)
        base = np.full(len(Z), float(meta.intercept_[0]))
        methods = []
        for c, est in zip(coef, stack.estimators_, strict=True):
            part = self._single(est, Z)
            values += c * part.values
            base += c * part.base
            methods.append(part.method.split(" + ")[0])
        return Attribution(values, base, "logit", "stack: " + ", ".join(sorted(set(methods))))

    def explain(self, Z: np.ndarray) -> Attribution:
        Z = np.asarray(Z, dtype=np.float64)
        stacked = self.stack_logit(Z)
        if stacked is not None:
            return to_probability(stacked)
        return self._single(self.model, Z)


def blend(mlp: Attribution, stack: Attribution, w: float) -> Attribution:
    """w * mlp + (1 - w) * stack, both in probability space."""
    if mlp.space != "probability" or stack.space != "probability":
        raise ValueError("blend attributions need both parts in probability space")
    return Attribution(
        w * mlp.values + (1.0 - w) * stack.values,
        w * mlp.base + (1.0 - w) * stack.base,
        "probability",
        f"blend {w:g} x ({mlp.method}) + {1.0 - w:g} x ({stack.method})",
        mlp.residual,
    )
