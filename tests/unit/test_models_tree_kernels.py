"""models/tree_kernels.py against scikit-learn's predict_proba (bit for bit) and the shap package's TreeSHAP."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

import models.tree_kernels
from models.attribution import ModelExplainer, tree_explainer
from models.tree_kernels import FlatForest


def _data(seed: int, n: int = 1500, width: int = 7, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    X[:, 3] = np.round(X[:, 3])  # ties at split points
    y = (X[:, 0] + X[:, 1] ** 2 - X[:, 2] * X[:, 3] + rng.normal(size=n) > 1.2).astype(int)
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, y


MODELS = [
    pytest.param(lambda: RandomForestClassifier(n_estimators=15, max_depth=10, random_state=1), 0.0, id="forest"),
    pytest.param(lambda: RandomForestClassifier(n_estimators=8, random_state=2, class_weight="balanced"), 0.05,
                 id="forest-unbounded-weighted-missing"),
    pytest.param(lambda: ExtraTreesClassifier(n_estimators=6, max_depth=12, random_state=3), 0.0, id="extra-trees"),
    pytest.param(lambda: DecisionTreeClassifier(max_depth=7, random_state=4), 0.03, id="tree-missing"),
]


@pytest.mark.parametrize(("make", "missing"), MODELS)
def test_predict_is_scikit_learns_probability_bit_for_bit(make, missing) -> None:
    X, y = _data(10, missing=missing)
    model = make().fit(X[:1000], y[:1000])
    flat = FlatForest.of(model)
    for rows in (X[1000:], X[1000:1001]):
        assert np.array_equal(flat.predict(rows), model.predict_proba(rows)[:, 1])
    assert flat.predict(X[:0]).shape == (0,)  # scikit-learn refuses an empty batch; a stream has them


@pytest.mark.parametrize(("make", "missing"), MODELS)
def test_shap_equals_the_shap_package_and_sums_to_the_prediction(make, missing) -> None:
    X, y = _data(20, missing=missing)
    model = make().fit(X[:1000], y[:1000])
    flat = FlatForest.of(model)
    rows = X[1000:1150]
    values, base = flat.shap(rows)
    reference = tree_explainer(model)(rows, check_additivity=False)
    np.testing.assert_allclose(values, reference.values[..., 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(base, reference.base_values[..., 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(base + values.sum(axis=1), flat.predict(rows), rtol=0, atol=1e-12)
    few, _ = flat.shap(rows[:2])  # fewer rows than a block: the per-row kernel
    np.testing.assert_allclose(few, reference.values[:2, :, 1], rtol=0, atol=1e-12)


def test_a_feature_the_trees_never_split_on_gets_nothing() -> None:
    X, y = _data(30)
    X[:, 5] = 0.0  # constant: no split can use it
    flat = FlatForest.of(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y))
    values, _ = flat.shap(X[:50])
    assert np.all(values[:, 5] == 0.0) and np.any(values[:, 0] != 0.0)


def test_the_explainer_of_a_forest_uses_the_compiled_treeshap_and_keeps_shap_for_boosting() -> None:
    X, y = _data(40)
    forest = RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(X, y)
    boosting = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    explainer = ModelExplainer(forest, X.mean(axis=0))
    att = explainer.explain(X[:20])
    np.testing.assert_allclose(att.output, forest.predict_proba(X[:20])[:, 1], rtol=0, atol=1e-12)
    assert isinstance(explainer._trees[id(forest)], FlatForest)
    boosted = ModelExplainer(boosting, X.mean(axis=0))
    np.testing.assert_allclose(boosted.explain(X[:20]).output, boosting.predict_proba(X[:20])[:, 1], atol=1e-9)
    assert not isinstance(boosted._trees[id(boosting)], FlatForest)


def test_unsupported_models_and_wrong_widths_are_refused() -> None:
    X, y = _data(50)
    assert not FlatForest.supports(GradientBoostingClassifier(n_estimators=2).fit(X, y))
    with pytest.raises(TypeError, match="FlatForest reads"):
        FlatForest.of(GradientBoostingClassifier(n_estimators=2).fit(X, y))
    three = np.where(y == 1, 2, np.arange(len(y)) % 2)
    assert not FlatForest.supports(DecisionTreeClassifier(max_depth=2).fit(X, three))
    flat = FlatForest.of(DecisionTreeClassifier(max_depth=2).fit(X, y))
    with pytest.raises(ValueError, match="expects n x 7"):
        flat.predict(X[:, :3])


def test_docstring_example_runs() -> None:
    result = doctest.testmod(models.tree_kernels)
    assert result.attempted > 0 and result.failed == 0


def test_a_saved_forest_loads_equal_and_a_broken_one_is_refused(tmp_path) -> None:
    X, y = _data(4, missing=0.05)
    forest = RandomForestClassifier(n_estimators=12, max_depth=9, random_state=1).fit(X, y)
    flat = FlatForest.of(forest)
    flat.save(tmp_path / "forest.npz")
    loaded = FlatForest.load(tmp_path / "forest.npz")
    assert (loaded.max_depth, loaded.n_features) == (flat.max_depth, flat.n_features)
    assert np.array_equal(loaded.predict(X[:300]), forest.predict_proba(X[:300])[:, 1])
    a, b = loaded.shap(X[:40]), flat.shap(X[:40])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    broken = {name: getattr(flat, name) for name in models.tree_kernels.ARRAYS}
    broken["left"] = np.where(broken["left"] >= 0, broken["left"] + len(broken["left"]), -1)  # children past the end
    np.savez(tmp_path / "broken.npz", **broken, shape=np.array([flat.max_depth, flat.n_features]))
    with pytest.raises(ValueError, match="do not fit together"):
        FlatForest.load(tmp_path / "broken.npz")
