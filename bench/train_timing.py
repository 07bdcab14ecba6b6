"""Wall time to fit each model on the WHOLE handbook-sim file (1.17M rows, handbook features, standardised).

`python -m bench.train_timing [--models a,b] [--mlp-epochs N]` writes bench/results/train_timing.json.
The MLP runs `--mlp-epochs` epochs without early stopping; seconds per epoch are reported alongside.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.handbook_eval import DEFAULT_SHARED, HANDBOOK_FEATURES, RESULTS, load_handbook
from features.config import FeatureConfig
from training.config import training_config
from training.pipeline import feature_dataset
from training.prepare import fit_preprocessor, make_model

MODELS = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting", "mlp", "stack")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--mlp-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cfg = training_config({"features": HANDBOOK_FEATURES})
    data = feature_dataset(load_handbook(args.shared, None), cfg, FeatureConfig())
    result: dict[str, Any] = {"rows": len(data.y), "feature_seconds": time.perf_counter() - start, "fit_seconds": {}}
    Z = fit_preprocessor(data.X, cfg).transform(data.X)
    for name in args.models.split(","):
        params = {"mlp": {"epochs": args.mlp_epochs, "patience": 0}}.get(name, {})
        model = make_model(name, training_config({"model_params": {name: params}}))
        t0 = time.perf_counter()
        model.fit(Z, data.y)
        seconds = time.perf_counter() - t0
        result["fit_seconds"][name] = seconds
        if name == "mlp":
            result["mlp_seconds_per_epoch"] = seconds / args.mlp_epochs
        print(f"{name:20s} {seconds:8.1f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_timing.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
