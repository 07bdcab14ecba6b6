"""The MLP's forward pass on its exported Dense weights: NumPy only, so the streamer never imports TensorFlow.

This module must stay free of TensorFlow, Keras and scikit-learn imports (tests/unit/test_models_lean_worker.py
runs the worker's start-up in a fresh interpreter and checks sys.modules).
"""

from __future__ import annotations

import numpy as np


def numpy_forward_from_weights(
    weights: list[np.ndarray], X: np.ndarray, output: str, activation: str = "relu"
) -> np.ndarray:
    """Fraud probability from Dense weights [W0, b0, W1, b1, ...]: matrix products only, float64."""
    h = np.asarray(X, dtype=np.float64)
    n_layers = len(weights) // 2
    for i in range(n_layers):
        h = h @ weights[2 * i] + weights[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0) if activation == "relu" else np.tanh(h)
    if output == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -500, 500))))
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return np.asarray(e[:, 1] / e.sum(axis=1))
