"""Seed 002's stacking ensemble: DT, SVM and NN base learners, weighted base predictions, an LR meta-learner.

The meta-learner is trained on OUT-OF-FOLD, TIME-ORDERED base predictions: expanding-window folds over the rows in
the order given (callers pass time-sorted rows), so no base prediction comes from a model that saw later rows.
scikit-learn 1.9's StackingClassifier cannot do this: its `cv` goes to cross_val_predict, which refuses splitters
that are not partitions (TimeSeriesSplit -> "cross_val_predict only works for partitions"), and its default
(Stratified)KFold trains each fold's base learners on rows from the future of the rows they predict.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted, validate_data

from fraudstream.errors import ConfigError
from models.baselines import BASELINE_NAMES, make_baseline
from models.targets import binary_fit_inputs

Weighting = Literal["none", "importance", "accuracy", "both"]


def make_base_learner(name: str, random_state: int | None = 0) -> Any:
    """DT, SVM (RBF kernel approximated by Nystroem + linear SVM: O(n), fits ~500k rows), NN, or a baseline name."""
    if name == "dt":
        return DecisionTreeClassifier(max_depth=6, min_samples_leaf=20, random_state=random_state)
    if name == "svm":
        return make_pipeline(
            Nystroem(kernel="rbf", gamma=0.1, n_components=200, random_state=random_state),
            LinearSVC(C=0.1, max_iter=2000, random_state=random_state),
        )
    if name == "nn":  # scikit-learn's MLP (picklable); early stopping on its last 10 % keeps it short
        return MLPClassifier(
            hidden_layer_sizes=(32, 16), max_iter=50, early_stopping=True, n_iter_no_change=3, random_state=random_state
        )
    if name in ("lr", "rf", "hgb"):
        return make_baseline(
            {"lr": "logistic_regression", "rf": "random_forest", "hgb": "gradient_boosting"}[name],
            random_state=random_state,
        )
    if name in BASELINE_NAMES:
        return make_baseline(name, random_state=random_state)
    raise ConfigError(f"unknown base learner '{name}'; use dt, svm, nn, lr, rf or hgb")


def base_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """P(fraud) of one fitted base learner; a margin-only learner (linear SVM) goes through a logistic squash."""
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X))
        if proba.shape[1] == 1:  # trained on one class only
            return np.full(X.shape[0], float(estimator.classes_[0]))
        return proba[:, 1]
    margin = np.asarray(estimator.decision_function(X), dtype=np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(margin, -500, 500))))


class StackingEnsemble(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Binary stacking classifier. weighting scales each base prediction P_j before the meta-learner:

    - importance: W_j = Importance_j, the importance of P_j as a meta-feature (impurity importance of a depth-3
      tree fitted on the out-of-fold predictions), so the meta input is P_j x Importance_j;
    - accuracy: W_j = Acc_j / sum_k Acc_k with Acc_j the out-of-fold accuracy of learner j at 0.5;
    - both: the product; none: plain stacking. (A linear meta-learner can undo a constant scale up to its
      regularisation, so the weights matter most for the L2-regularised LR and for tree meta-learners.)
    """

    def __init__(
        self,
        base_learners: tuple[str, ...] = ("dt", "svm", "nn"),
        weighting: Weighting = "none",
        meta_learner: Any = None,
        n_folds: int = 4,
        random_state: int | None = 0,
    ) -> None:
        self.base_learners = base_learners
        self.weighting = weighting
        self.meta_learner = meta_learner
        self.n_folds = n_folds
        self.random_state = random_state

    def _bases(self) -> list[Any]:
        return [make_base_learner(name, self.random_state) for name in self.base_learners]

    @staticmethod
    def _fit_or_constant(estimator: Any, X: np.ndarray, y: np.ndarray) -> Any:
        if len(np.unique(y)) < 2:
            from sklearn.dummy import DummyClassifier

            return DummyClassifier(strategy="prior").fit(X, y)
        if isinstance(estimator, MLPClassifier) and estimator.early_stopping:
            if len(y) * estimator.validation_fraction < 2 or np.bincount(y).min() < 2:
                estimator.set_params(early_stopping=False)  # too few rows for its validation slice
        return estimator.fit(X, y)

    def _oof(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_splits = max(2, min(self.n_folds, X.shape[0] // 2 - 1))
        oof = np.full((X.shape[0], len(self.base_learners)), np.nan)
        for train_idx, test_idx in TimeSeriesSplit(n_splits=n_splits).split(X):
            for j, base in enumerate(self._bases()):
                fitted = self._fit_or_constant(base, X[train_idx], y[train_idx])
                oof[test_idx, j] = base_scores(fitted, X[test_idx])
        mask = ~np.isnan(oof).any(axis=1)
        return oof[mask], y[mask]

    def _weights(self, oof: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = oof.shape[1]
        importance = np.full(k, 1.0 / k)
        if len(np.unique(y)) == 2:
            tree = DecisionTreeClassifier(max_depth=3, random_state=self.random_state).fit(oof, y)
            if tree.feature_importances_.sum() > 0:
                importance = tree.feature_importances_
        accuracy = ((oof > 0.5).astype(int) == y[:, None]).mean(axis=0)
        accuracy = accuracy / accuracy.sum() if accuracy.sum() > 0 else np.full(k, 1.0 / k)
        self.importance_weights_ = importance
        self.accuracy_weights_ = accuracy
        if self.weighting == "none":
            return np.ones(k)
        if self.weighting == "importance":
            return np.asarray(importance)
        if self.weighting == "accuracy":
            return np.asarray(accuracy)
        if self.weighting == "both":
            return np.asarray(importance * accuracy)
        raise ConfigError(f"unknown stacking weighting '{self.weighting}'; use none, importance, accuracy or both")

    def fit(self, X: Any, y: Any) -> StackingEnsemble:
        X, y01 = binary_fit_inputs(self, X, y, np.float64)
        oof, y_oof = self._oof(X, y01)
        self.weights_ = self._weights(oof, y_oof)
        meta = clone(self.meta_learner) if self.meta_learner is not None else LogisticRegression(C=1.0)
        self.meta_ = self._fit_or_constant(meta, oof * self.weights_, y_oof) if len(y_oof) else None
        self.estimators_ = [self._fit_or_constant(base, X, y01) for base in self._bases()]
        return self

    def base_predictions(self, X: np.ndarray) -> np.ndarray:
        """n x n_learners matrix of the refitted base learners' fraud probabilities."""
        return np.column_stack([base_scores(est, X) for est in self.estimators_])

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        if len(self.classes_) == 1:
            return np.ones((X.shape[0], 1))
        meta_input = self.base_predictions(X) * self.weights_
        if self.meta_ is None:
            p1 = meta_input.sum(axis=1) / self.weights_.sum()
        else:
            p1 = base_scores(self.meta_, meta_input)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if proba.shape[1] == 1:
            return np.repeat(self.classes_, proba.shape[0])
        return np.asarray(self.classes_[(proba[:, 1] > 0.5).astype(int)])

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean over base learners that expose importances (trees) or coefficients (linear), each normalised."""
        check_is_fitted(self, "estimators_")
        parts = []
        for est in self.estimators_:
            raw = getattr(est, "feature_importances_", None)
            if raw is None and getattr(est, "coef_", None) is not None:
                raw = np.abs(np.ravel(est.coef_))
            if raw is not None and np.sum(raw) > 0:
                parts.append(np.asarray(raw, dtype=np.float64) / np.sum(raw))
        if not parts:
            return np.full(self.n_features_in_, 1.0 / self.n_features_in_)
        return np.asarray(np.mean(parts, axis=0))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
