"""FraudMLP: the seed papers' Keras multilayer perceptron behind the scikit-learn estimator contract.

Default = seed 001 (Dense 30-16-16 ReLU, 2-unit softmax, Adam, sparse categorical CE, 50 epochs, batch 32, early
stopping); output="sigmoid" with lr_decay = seed 000. Scoring uses a pure-NumPy forward pass of the learned weights.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, validate_data

from models.forward import numpy_forward_from_weights
from models.targets import binary_fit_inputs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

Activation = Literal["relu", "tanh"]


def _keras() -> Any:
    """Import Keras lazily (TF start-up costs seconds); environment defaults are set at module import above."""
    from models.quiet_import import import_quietly

    return import_quietly("keras")


class FraudMLP(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary fraud classifier: a Keras Dense network trained with early stopping on a validation slice.

    The validation slice is the LAST `validation_fraction` of the rows (callers pass time-ordered rows), so early
    stopping never looks at rows older than the ones it trains on.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (30, 16, 16),
        activation: Activation = "relu",
        output: Literal["softmax", "sigmoid"] = "softmax",
        learning_rate: float = 1e-3,
        lr_decay: Literal["none", "exponential", "plateau"] = "none",
        dropout: float = 0.0,
        epochs: int = 50,
        batch_size: int = 32,
        validation_fraction: float = 0.1,
        patience: int = 5,
        class_weight: Literal["balanced"] | dict[int, float] | None = None,
        random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.output = output
        self.learning_rate = learning_rate
        self.lr_decay = lr_decay
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ training
    def _build(self, n_features: int, steps_per_epoch: int) -> Any:
        keras = _keras()
        inputs = keras.Input(shape=(n_features,), name="features")
        h = inputs
        for i, units in enumerate(self.hidden):
            h = keras.layers.Dense(int(units), activation=self.activation, name=f"dense_{i}")(h)
            if self.dropout > 0:
                h = keras.layers.Dropout(self.dropout, name=f"dropout_{i}")(h)
        if self.output == "sigmoid":
            out = keras.layers.Dense(1, activation="sigmoid", name="fraud")(h)
            loss = "binary_crossentropy"
        else:
            out = keras.layers.Dense(2, activation="softmax", name="fraud")(h)
            loss = "sparse_categorical_crossentropy"
        lr: Any = self.learning_rate
        if self.lr_decay == "exponential":
            lr = keras.optimizers.schedules.ExponentialDecay(
                self.learning_rate, decay_steps=max(steps_per_epoch, 1), decay_rate=0.9
            )
        model = keras.Model(inputs, out, name="fraud_mlp")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss)
        return model

    def _class_weights(self, y01: np.ndarray) -> dict[int, float] | None:
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            present = np.unique(y01)
            w = compute_class_weight("balanced", classes=present, y=y01)
            return {int(c): float(v) for c, v in zip(present, w, strict=True)}
        return {int(k): float(v) for k, v in dict(self.class_weight).items()}

    def fit(self, X: Any, y: Any) -> FraudMLP:
        X, y01 = binary_fit_inputs(self, X, y, np.float32)
        y01 = y01.astype(np.int32)
        keras = _keras()
        if self.random_state is not None:
            keras.utils.set_random_seed(int(self.random_state))
        n = X.shape[0]
        n_val = round(n * self.validation_fraction) if self.validation_fraction > 0 else 0
        use_val = self.patience > 0 and n_val >= 2 and n - n_val >= 2
        X_tr, y_tr = (X[: n - n_val], y01[: n - n_val]) if use_val else (X, y01)
        steps = int(np.ceil(len(X_tr) / self.batch_size))
        self.model_ = self._build(X.shape[1], steps)
        callbacks: list[Any] = []
        if use_val:
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
            )
            if self.lr_decay == "plateau":
                callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
        history = self.model_.fit(
            X_tr,
            y_tr.astype(np.float32) if self.output == "sigmoid" else y_tr,
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_data=(X[n - n_val :], y01[n - n_val :]) if use_val else None,
            class_weight=self._class_weights(y_tr),
            callbacks=callbacks,
            verbose=self.verbose,
            shuffle=True,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.n_epochs_ = len(self.history_.get("loss", []))
        self.weights_ = [np.asarray(w, dtype=np.float64) for w in self.model_.get_weights()]
        self._compiled: Any = None
        return self

    # ------------------------------------------------------------------ scoring
    def numpy_forward(self, X: np.ndarray) -> np.ndarray:
        """P(class 1) by matrix products on the learned weights (no TensorFlow call)."""
        check_is_fitted(self, "weights_")
        return numpy_forward_from_weights(self.weights_, X, self.output, self.activation)

    def compiled_forward(self, X: np.ndarray) -> np.ndarray:
        """P(class 1) through a tf.function-compiled call of the Keras model (the GPU path)."""
        check_is_fitted(self, "model_")
        if getattr(self, "_compiled", None) is None:
            import tensorflow as tf

            self._compiled = tf.function(lambda x: self.model_(x, training=False), reduce_retracing=True)
        out = np.asarray(self._compiled(np.asarray(X, dtype=np.float32)), dtype=np.float64)
        return out[:, 0] if self.output == "sigmoid" else out[:, 1]

    def keras_predict(self, X: np.ndarray) -> np.ndarray:
        """P(class 1) by model.predict (the slow reference path, kept for the agreement test)."""
        out = np.asarray(self.model_.predict(np.asarray(X, dtype=np.float32), verbose=0), dtype=np.float64)
        return out[:, 0] if self.output == "sigmoid" else out[:, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        p1 = self.numpy_forward(X)
        if len(self.classes_) == 1:
            return np.ones((X.shape[0], 1))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if proba.shape[1] == 1:
            return np.repeat(self.classes_, proba.shape[0])
        return np.asarray(self.classes_[(proba[:, 1] > 0.5).astype(int)])

    # ------------------------------------------------------------------ persistence
    def save_keras(self, path: Path) -> None:
        """Write the Keras model as a backend-neutral `.keras` file (Dense/Dropout layers only)."""
        check_is_fitted(self, "model_")
        self.model_.save(path)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_compiled", None)
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "m.keras"
                model.save(file)
                state["_keras_bytes"] = file.read_bytes()
        return state  # an unpickled, never-used model keeps its `_keras_bytes` as they came

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore without Keras: `model_` is rebuilt from `_keras_bytes` on first use (see __getattr__).

        Unpickling (a stack that holds a FraudMLP, a backtest fold) and predict_proba (NumPy on weights_) never
        import TensorFlow; only save_keras, compiled_forward and keras_predict do.
        """
        self.__dict__.update(state)
        self._compiled = None

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not found normally: build the Keras model lazily from the pickled bytes.
        if name != "model_":
            raise AttributeError(name)
        blob = self.__dict__.get("_keras_bytes")
        if blob is None:
            raise AttributeError(name)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "m.keras"
            file.write_bytes(blob)
            model = _keras().saving.load_model(file, compile=False)
        self.__dict__["model_"] = model
        del self.__dict__["_keras_bytes"]
        return model

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = True
        return tags
