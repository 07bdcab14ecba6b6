"""Attributions of the scorer in use sum, with their base value, to the model's own output; reasons from them name
one feature family once; the scoring policy comes from the manifest and refuses an uncalibrated blend weight."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neural_network import MLPClassifier

from fraudstream.errors import ConfigError
from models.attribution import baseline_shapley, mlp_attribution, mlp_deeplift, mlp_integrated_gradients, mlp_logit
from models.loaded import LoadedModel, MLPWeights
from models.policy import policy_of_manifest
from models.preprocess import Preprocessor
from models.stacking import StackingEnsemble
from streamer.reasons import explain, reason_family

NAMES = ("amount", "amount_ratio_mean_1d", "amount_ratio_mean_7d", "amount_ratio_mean_30d", "amount_zscore_7d",
         "count_1h", "count_1d", "dist_prev_km", "new_merchant", "hour_sin", "hour_cos")  # fmt: skip


def _data(n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = np.column_stack([
        rng.lognormal(3.5, 1.0, n), *(rng.lognormal(0.0, 0.6, n) for _ in range(3)), rng.normal(size=n),
        rng.poisson(1.0, n), rng.poisson(3.0, n), rng.exponential(20.0, n), rng.integers(0, 2, n),
        np.sin(rng.uniform(0, 6.28, n)), np.cos(rng.uniform(0, 6.28, n)),
    ])  # fmt: skip
    y = ((X[:, 0] > 150) | (X[:, 2] * X[:, 3] > 3) | ((X[:, 8] == 1) & (X[:, 7] > 40))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    X, y = _data()
    pre = Preprocessor.fit(X)
    Z = pre.transform(X)
    mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0).fit(Z, y)
    weights = [a for pair in zip(mlp.coefs_, mlp.intercepts_, strict=True) for a in pair]
    stacks = {
        "stack (dt, svm, nn + LR meta)": StackingEnsemble(base_learners=("dt", "svm", "nn"), n_folds=2).fit(Z, y),
        "stack (rf, hgb, lr)": StackingEnsemble(base_learners=("rf", "hgb", "lr"), n_folds=2).fit(Z, y),
        "random_forest": RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(Z, y),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(Z, y),
    }
    return {"X": X, "y": y, "pre": pre, "weights": weights, "stacks": stacks}


def _loaded(trained: dict[str, Any], stack: Any, manifest: dict[str, Any] | None = None) -> LoadedModel:
    return LoadedModel(
        version="v-test", input_names=NAMES, used_features=NAMES, thresholds={"mlp": 0.5, "stack": 0.5, "blend": 0.4},
        preprocessor=trained["pre"], mlp_weights=MLPWeights(trained["weights"], "sigmoid", "relu"), stack=stack,
        contribution_weights=np.full(len(NAMES), 1 / len(NAMES)), manifest=manifest,
    )  # fmt: skip


@pytest.mark.parametrize("stack_name", ["stack (dt, svm, nn + LR meta)", "stack (rf, hgb, lr)", "random_forest",
                                        "gradient_boosting"])  # fmt: skip
@pytest.mark.parametrize("scorer", ["mlp", "stack", "blend"])
def test_attributions_plus_base_equal_the_score(trained: dict[str, Any], stack_name: str, scorer: str) -> None:
    model = _loaded(trained, trained["stacks"][stack_name])
    X = trained["X"][:40]
    att = model.attributions(X, scorer, 0.25)
    score = model.score(X, scorer, 0.25)
    assert att.space == "probability" and att.values.shape == X.shape
    np.testing.assert_allclose(att.base + att.values.sum(axis=1), score, rtol=0, atol=1e-6)
    assert np.ptp(att.base) == 0.0  # one base value per model: the baseline's (or the trees' expected) output
    assert np.abs(att.values).sum() > 0


def test_integrated_gradients_need_little_correction_and_sum_in_logit_space(trained: dict[str, Any]) -> None:
    Z = trained["pre"].transform(trained["X"][:30])
    b = np.zeros(Z.shape[1])
    att = mlp_integrated_gradients(trained["weights"], Z, b, "sigmoid", steps=256)
    assert att.space == "logit"
    np.testing.assert_allclose(att.output, mlp_logit(trained["weights"], Z, "sigmoid"), atol=1e-9)
    spread = np.abs(mlp_logit(trained["weights"], Z, "sigmoid") - att.base).max()
    assert att.residual < 0.05 * spread  # the Riemann sum alone is already close to the integral


def test_deeplift_sums_to_the_logit_for_relu_and_tanh_and_both_outputs(trained: dict[str, Any]) -> None:
    Z = trained["pre"].transform(trained["X"][:200])
    b = Z.mean(axis=0)
    rng = np.random.default_rng(3)
    softmax = [rng.normal(size=(Z.shape[1], 12)), rng.normal(size=12), rng.normal(size=(12, 2)), rng.normal(size=2)]
    for weights, output in ((trained["weights"], "sigmoid"), (softmax, "softmax")):
        for activation in ("relu", "tanh"):
            att = mlp_deeplift(weights, Z, b, output, activation)
            logit = mlp_logit(weights, Z, output, activation)
            assert att.space == "logit" and att.values.shape == Z.shape
            np.testing.assert_allclose(att.base, mlp_logit(weights, b[None, :], output, activation)[0], atol=1e-12)
            np.testing.assert_allclose(att.output, logit, rtol=0, atol=1e-10)
            assert att.residual < 1e-9  # exact by construction: only float rounding is moved


def test_deeplift_equals_integrated_gradients_with_one_hidden_layer() -> None:
    """One hidden layer: each unit's pre-activation is linear along the path, so the rescale multiplier is the
    path integral of its derivative, and the two methods agree feature by feature (IG to its Riemann error)."""
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(6, 20)), rng.normal(size=20), rng.normal(size=(20, 1)), rng.normal(size=1)]
    Z, b = rng.normal(size=(25, 6)), rng.normal(size=6)
    for activation in ("relu", "tanh"):
        deep = mlp_deeplift(weights, Z, b, "sigmoid", activation)
        ig = mlp_integrated_gradients(weights, Z, b, "sigmoid", activation, steps=4096)
        np.testing.assert_allclose(deep.values, ig.values, atol=2e-3 * np.abs(ig.values).max())


def test_deeplift_differs_from_plain_gradient_times_input_where_units_switch() -> None:
    """A unit off at x but on at the baseline still gets its share (a gradient at x alone would give it 0)."""
    weights = [np.array([[1.0, -1.0]]), np.array([0.0, 0.0]), np.array([[1.0], [1.0]]), np.array([0.0])]
    att = mlp_deeplift(weights, np.array([[2.0]]), np.array([-2.0]), "sigmoid")
    # logit = relu(x) + relu(-x): 2 at x = 2 and at x = -2, so the attribution is 0, not the gradient's 1 x 4
    assert att.values[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert float(att.output[0]) == pytest.approx(2.0) and att.residual < 1e-12


def test_mlp_methods_are_selectable_and_an_unknown_one_is_refused(trained: dict[str, Any]) -> None:
    model = _loaded(trained, None)
    X = trained["X"][:20]
    score = model.score(X, "mlp")
    for method in ("deeplift", "integrated_gradients"):
        att = model.attributions(X, "mlp", mlp_method=method)
        np.testing.assert_allclose(att.base + att.values.sum(axis=1), score, atol=1e-6)
        assert att.method.startswith("DeepLIFT" if method == "deeplift" else "integrated gradients")
    with pytest.raises(ValueError, match="unknown MLP attribution method 'lime'"):
        mlp_attribution(trained["weights"], X, X[0], "sigmoid", method="lime")


def test_baseline_shapley_is_exact_for_an_additive_function() -> None:
    rng = np.random.default_rng(0)
    Z, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    coef = np.array([1.0, -2.0, 0.5, 3.0])
    att = baseline_shapley(lambda X: X @ coef + np.sin(X[:, 0]), Z, b)
    expected = (Z - b) * coef
    expected[:, 0] += np.sin(Z[:, 0]) - np.sin(b[0])
    np.testing.assert_allclose(att.values, expected, atol=1e-12)


def test_reasons_keep_one_feature_per_family(trained: dict[str, Any]) -> None:
    model = _loaded(trained, trained["stacks"]["random_forest"])
    X = trained["X"]
    hits = X[model.score(X, "blend", 0.25) >= 0.5][:50]
    att = model.attributions(hits, "blend", 0.25)
    reasons = explain(NAMES, hits, att.values, 5)
    assert any(len(r) >= 2 for r in reasons)
    for row in reasons:
        families = [reason_family(r.feature) for r in row]
        assert len(families) == len(set(families)), row
        assert all(r.contribution > 0 for r in row)
    assert reason_family("amount_ratio_mean_30d") == reason_family("amount_zscore_7d") == "amount_vs_user_mean"
    assert reason_family("hour_sin") == reason_family("hour_cos") and reason_family("count_1h") == "count"
    assert reason_family("max_amount_1h") == reason_family("mean_amount_30d") == reason_family("min_amount_1d")


def test_policy_from_the_manifest_and_a_refused_weight(trained: dict[str, Any]) -> None:
    policy = {"scorer": "blend", "blend_mlp_weight": 0.25, "threshold": 0.4, "alerts_per_day": 100.0,
              "threshold_policy": "alert_budget"}  # fmt: skip
    model = _loaded(trained, trained["stacks"]["random_forest"],
                    {"policy": policy, "thresholds": {"mlp": 0.5, "stack": 0.5, "blend": 0.4}})
    served = model.serving_policy(None, None)
    assert (served.scorer, served.blend_mlp_weight, served.threshold) == ("blend", 0.25, 0.4)
    assert model.serving_policy(None, 0.25).threshold == 0.4
    other = model.serving_policy("mlp", None)
    assert (other.scorer, other.threshold, other.source) == ("mlp", 0.5, "settings")
    with pytest.raises(ConfigError, match=r"BLEND_MLP_WEIGHT=0.5 differs .* policy weight 0.25"):
        model.serving_policy(None, 0.5)


def test_a_manifest_without_a_policy_gets_the_legacy_default() -> None:
    old = {"scorers": ["mlp", "stack", "blend"], "thresholds": {"mlp": 0.3, "stack": 0.6, "blend": 0.4}}
    legacy = policy_of_manifest(old)
    assert (legacy.scorer, legacy.blend_mlp_weight, legacy.threshold, legacy.source) == (
        "mlp", 0.5, 0.3, "legacy default")  # fmt: skip
    assert policy_of_manifest({"scorers": ["stack"], "thresholds": {"stack": 0.6}}).scorer == "stack"


class _TwoVersions:
    """A registry stand-in holding two loaded versions (ModelHolder only calls these two methods)."""

    def __init__(self, models: dict[str, LoadedModel]) -> None:
        self.models, self.current = models, "v1"

    def current_version(self) -> str:
        return self.current

    def load(self, version: str | None, **_: Any) -> LoadedModel:
        return self.models[version or self.current]


def test_a_reloaded_version_whose_policy_the_settings_contradict_is_refused(trained: dict[str, Any]) -> None:
    from streamer.scoring import ModelHolder

    def version(name: str, weight: float) -> LoadedModel:
        policy = {"scorer": "blend", "blend_mlp_weight": weight, "threshold": 0.4}
        model = _loaded(trained, trained["stacks"]["random_forest"], {"policy": policy, "thresholds": {"blend": 0.4}})
        model.version = name
        return model

    registry = _TwoVersions({"v1": version("v1", 0.25), "v2": version("v2", 0.5)})
    holder = ModelHolder(registry, accept=lambda m: m.serving_policy(None, 0.25))  # type: ignore[arg-type]
    assert holder.version == "v1"
    registry.current = "v2"
    assert holder.check_once() is False and holder.version == "v1"
    assert holder.last_error is not None and "calibrated for" in holder.last_error


@pytest.mark.parametrize("threads", [2, 3])
def test_alerts_explained_on_threads_equal_the_one_thread_attributions(trained: dict[str, Any], threads: int) -> None:
    """streamer/explain_threads.py: the alerted rows split in order over threads; the forest's TreeSHAP values are
    bit-identical, the MLP's DeepLIFT equal to the last ulp, and the reasons the same."""
    from streamer.core import explanations_of
    from streamer.explain_threads import ExplainThreads

    forest = _loaded(trained, trained["stacks"]["random_forest"])
    X = trained["X"][:200]
    pool = ExplainThreads(threads, min_rows_per_thread=16)
    try:
        stack = pool.attributions(forest, X, "stack", 0.25, "deeplift")
        assert pool.last_chunks == threads
        alone = forest.attributions(X, "stack", 0.25)
        assert np.array_equal(stack.values, alone.values) and np.array_equal(stack.base, alone.base)
        blend = pool.attributions(forest, X, "blend", 0.25, "deeplift")
        np.testing.assert_allclose(blend.values, forest.attributions(X, "blend", 0.25).values, rtol=0, atol=1e-12)
        assert blend.method == forest.attributions(X[:3], "blend", 0.25).method
        few = pool.attributions(forest, X[:20], "stack", 0.25, "deeplift")  # under 2 x 16 rows: one thread
        assert pool.last_chunks == 1 and np.array_equal(few.values, alone.values[:20])
        threaded = explanations_of(forest, X, 3, "blend", 0.25, "deeplift", pool)
        assert threaded[0] == explanations_of(forest, X, 3, "blend", 0.25, "deeplift")[0]
    finally:
        pool.close()
    with pytest.raises(ValueError, match="at least 1"):
        ExplainThreads(0)


def test_explain_threads_docstring_example_runs() -> None:
    import doctest

    import streamer.explain_threads

    result = doctest.testmod(streamer.explain_threads)
    assert result.attempted > 0 and result.failed == 0
