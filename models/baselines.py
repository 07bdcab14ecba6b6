"""The comparison models every seed measures against: LR, decision tree, random forest, gradient-boosted trees."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from fraudstream.errors import ConfigError

#: Defaults follow the handbook's validation-selected settings where it gives them.
_DEFAULTS: dict[str, tuple[type, dict[str, Any]]] = {
    "logistic_regression": (LogisticRegression, {"C": 0.1, "max_iter": 1000}),
    "decision_tree": (DecisionTreeClassifier, {"max_depth": 2, "random_state": 0}),
    "random_forest": (
        RandomForestClassifier,
        {"n_estimators": 100, "max_depth": 20, "n_jobs": 1, "random_state": 0},
    ),
    "gradient_boosting": (
        HistGradientBoostingClassifier,
        {"max_iter": 200, "learning_rate": 0.05, "max_depth": 6, "random_state": 0},
    ),
}

BASELINE_NAMES: tuple[str, ...] = tuple(_DEFAULTS)


def make_baseline(name: str, **params: Any) -> Any:
    """A new, unfitted baseline estimator; `params` override the defaults."""
    if name not in _DEFAULTS:
        raise ConfigError(f"unknown baseline model '{name}'; choose one of {', '.join(BASELINE_NAMES)}")
    cls, defaults = _DEFAULTS[name]
    return cls(**{**defaults, **params})
