"""Input checks shared by the estimators: sklearn-validated X and a binary target mapped to 0/1."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data


def binary_fit_inputs(estimator: Any, X: Any, y: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate X and y for `fit`, set `estimator.classes_`, and return X and y as 0/1 indices of the classes."""
    X, y = validate_data(estimator, X, y, dtype=dtype)
    check_classification_targets(y)
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to fit, got n_samples={X.shape[0]}")
    estimator.classes_ = np.unique(y)
    if len(estimator.classes_) > 2:
        name = type(estimator).__name__
        raise ValueError(f"Only binary classification is supported. {name} got more than two classes in y")
    return X, np.searchsorted(estimator.classes_, y)
