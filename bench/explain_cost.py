"""What an alert's explanation costs: the scorer's attributions (models/attribution.py) per alerted row, per scorer,
against scoring the same rows. Only alerted rows are explained, so this is a cost per alert, not per event.

    python -m bench.explain_cost [--registry DIR] [--out bench-results/explain_cost.json]

Without --registry it fits a small model here (scikit-learn's MLP exported as Dense weights, served by the same
NumPy path, and a 100-tree random forest of depth 20 as the stack slot: the tuned default policy's shape) on
synthetic rows, so it runs in seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ALERT_BATCHES = (1, 10, 100)


def _small_model() -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier

    from features.spec import FEATURE_NAMES
    from models.loaded import LoadedModel, MLPWeights
    from models.preprocess import Preprocessor

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(1.0, 1.0, size=(20_000, len(FEATURE_NAMES))))
    y = ((X[:, 0] * X[:, 1] > 3.0) | (X[:, 2] > 3.2)).astype(int)
    pre = Preprocessor.fit(X)
    Z = pre.transform(X)
    mlp = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=30, random_state=0).fit(Z, y)
    weights = [a for pair in zip(mlp.coefs_, mlp.intercepts_, strict=True) for a in pair]
    forest = RandomForestClassifier(n_estimators=100, max_depth=20, n_jobs=1, random_state=0).fit(Z, y)
    return LoadedModel(
        version="bench-explain", input_names=FEATURE_NAMES, used_features=FEATURE_NAMES,
        thresholds={"mlp": 0.5, "stack": 0.5, "blend": 0.5}, preprocessor=pre,
        mlp_weights=MLPWeights(weights, "sigmoid", "relu"), stack=forest,
        contribution_weights=np.full(len(FEATURE_NAMES), 1 / len(FEATURE_NAMES)),
    )  # fmt: skip


def explanation_cost(model: Any, batches: tuple[int, ...] = ALERT_BATCHES, weight: float = 0.25) -> dict[str, Any]:
    """ms per alert of model.attributions per scorer and alert batch size, the scoring cost of the same rows, and
    the largest |base + sum - score| seen (the completeness the tests hold to 1e-6)."""
    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(1.0, 1.0, size=(max(batches), len(model.feature_names))))
    model.attributions(X[:1], "stack", weight) if "stack" in model.scorers else None  # builds the TreeSHAP explainer
    rows = []
    for scorer in model.scorers:
        for n in batches:
            batch = X[:n]
            t0 = time.perf_counter()
            att = model.attributions(batch, scorer, weight)
            explain_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            score = model.score(batch, scorer, weight)
            score_s = time.perf_counter() - t0
            rows.append({
                "scorer": scorer, "alerts": n, "explain_ms_per_alert": round(explain_s * 1000 / n, 3),
                "score_ms_per_row": round(score_s * 1000 / n, 4),
                "max_sum_error": float(np.max(np.abs(att.base + att.values.sum(axis=1) - score))),
                "method": att.method,
            })  # fmt: skip
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, help="explain the current version of this registry instead")
    parser.add_argument("--out", type=Path, default=Path("bench-results/explain_cost.json"))
    args = parser.parse_args()
    if args.registry is not None:
        from models.registry import ModelRegistry

        model = ModelRegistry(args.registry, allow_unsigned=True).load(device="cpu")
    else:
        model = _small_model()
    result = explanation_cost(model)
    for r in result["rows"]:
        print(f"{r['scorer']:>5} x{r['alerts']:>3} alerts: {r['explain_ms_per_alert']:8.3f} ms/alert to explain, "
              f"{r['score_ms_per_row']:7.4f} ms/row to score, sum error {r['max_sum_error']:.1e}  ({r['method']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
