"""FraudMLP: the NumPy, tf.function and model.predict paths agree; registry round trip of an MLP bundle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from models.bundle import ModelBundle
from models.mlp import FraudMLP
from models.preprocess import Preprocessor
from models.registry import ModelRegistry


def _data(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n) > 1.0).astype(int)
    return X, y


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_three_forward_paths_agree(output: str) -> None:
    X, y = _data()
    mlp = FraudMLP(epochs=3, batch_size=64, output=output, lr_decay="exponential", dropout=0.1).fit(X, y)
    assert mlp.n_epochs_ >= 1 and "val_loss" in mlp.history_
    numpy_path = mlp.numpy_forward(X)
    np.testing.assert_allclose(mlp.compiled_forward(X), numpy_path, atol=1e-5)
    np.testing.assert_allclose(mlp.keras_predict(X), numpy_path, atol=1e-5)
    np.testing.assert_allclose(mlp.predict_proba(X)[:, 1], numpy_path)
    restored = pickle.loads(pickle.dumps(mlp))
    np.testing.assert_allclose(restored.compiled_forward(X), numpy_path, atol=1e-5)


def test_mlp_bundle_round_trips_through_the_registry(tmp_path: Path) -> None:
    X, y = _data()
    pre = Preprocessor.fit(X)
    mlp = FraudMLP(epochs=2, batch_size=64, class_weight="balanced").fit(pre.transform(X), y)
    names = tuple(f"f{i}" for i in range(5))
    bundle = ModelBundle(names, names, pre, mlp, None, {"mlp": 0.5}, "spec")
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = reg.publish(bundle, metrics={"average_precision": 0.3}, holdout_id="h", data_range=("a", "b"), seed=0)
    loaded = reg.load(version, device="cpu", expected_spec_hash="spec")
    assert loaded.device == "CPU"
    np.testing.assert_allclose(loaded.score(X, "mlp"), mlp.numpy_forward(pre.transform(X)), atol=1e-12)
    import keras

    reloaded = keras.saving.load_model(tmp_path / "versions" / version / "mlp.keras", compile=False)
    keras_out = np.asarray(reloaded.predict(pre.transform(X).astype(np.float32), verbose=0))[:, 1]
    np.testing.assert_allclose(keras_out, loaded.score(X, "mlp"), atol=1e-5)
