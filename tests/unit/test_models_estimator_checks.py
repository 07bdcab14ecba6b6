"""scikit-learn's own estimator checks on FraudMLP (tiny network, few epochs) and StackingEnsemble."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.mlp import FraudMLP
from models.stacking import StackingEnsemble

#: With 2 epochs of a 4-unit network the checks that demand a well-trained classifier (accuracy > 0.83 on their toy
#: data, class_weight moving the decision) cannot pass; training long enough for them takes minutes per check.
_MLP_UNDERTRAINED = "2 epochs of a 4-unit net (kept tiny for test time) cannot reach the check's accuracy bar"


def _expected_failures(estimator: Any) -> dict[str, str]:
    if isinstance(estimator, FraudMLP):
        return {"check_classifiers_train": _MLP_UNDERTRAINED, "check_class_weight_classifiers": _MLP_UNDERTRAINED}
    return {}


@pytest.mark.slow
@parametrize_with_checks(
    [
        FraudMLP(epochs=2, hidden=(4,), batch_size=64, patience=0),
        StackingEnsemble(n_folds=2),
        StackingEnsemble(n_folds=2, weighting="both", base_learners=("dt", "lr")),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)
