"""The lean worker: the streamer's start-up and scoring never import TensorFlow or Keras.

Each start-up runs in a fresh interpreter (this test process has Keras loaded already): it imports every command
module (fraudstream.cli), both engines, builds the runtime from a registry holding a real Keras-trained MLP and a
stack, scores a batch of transactions through the core and reports sys.modules. The NumPy forward pass on the
exported weights is checked against Keras' own model.predict on the same rows.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.bundle import ModelBundle
from models.mlp import FraudMLP
from models.preprocess import Preprocessor
from models.registry import ModelRegistry
from tests.streamer_support import TINY_FEATURES, simulated_transactions, txn_headers

REPO = Path(__file__).resolve().parents[2]
TRAINING_ONLY = ("tensorflow", "keras")
#: Not needed to score with the MLP (scikit-learn is needed to unpickle the stack, and it imports pandas).
MLP_WORKER_NEVER = (*TRAINING_ONLY, "sklearn", "pandas", "matplotlib")

WORKER = r"""
import json, sys
from datetime import UTC, datetime
from pathlib import Path

args = json.loads(sys.argv[1])
import fraudstream.cli  # registers every package's commands, as `fraudstream stream` does
import streamer.run, streamer.faust_engine, streamer.metrics, fraudstream.infra.topics  # both engines' start-up
from fraudstream.clock import ManualClock
from fraudstream.settings import build_settings
from state.store import InMemoryFeatureStore
from streamer.core import RawRecord
from streamer.runtime import build_runtime

settings = build_settings(
    {"registry": {"path": args["registry"], "allow_unsigned": True},
     "streamer": {"scorer": args["scorer"], "device": "cpu"}},  # auto would take a GPU where there is one
    environ={},
)
runtime = build_runtime(settings, store=InMemoryFeatureStore(), clock=ManualClock(datetime(2024, 1, 10, tzinfo=UTC)))
headers = [(k, v.encode()) for k, v in args["headers"]]
records = [
    RawRecord("transactions", 0, i, key.encode(), value.encode(), headers)
    for i, (key, value) in enumerate(json.loads(Path(args["records"]).read_text()))
]
result = runtime.processor.process(records)
model = runtime.holder.model
runtime.close()
print(json.dumps({
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
    "scored": result.counts.scored,
    "dlq": result.counts.dlq,
    "late": result.counts.late,
    "records": len(records),
    "messages": len(result.messages),
    "version": model.version,
    "device": model.device,
    "scorers": list(model.scorers),
}))
"""


def _mlp_and_stack_bundle(output: str = "softmax") -> tuple[ModelBundle, np.ndarray]:
    from features.spec import FEATURE_NAMES, feature_spec_hash
    from models.stacking import StackingEnsemble

    rng = np.random.default_rng(0)
    n = 800
    used = rng.normal(size=(n, len(TINY_FEATURES)))
    y = (used[:, 0] - used[:, 1] + 0.5 * rng.normal(size=n) > 1.0).astype(int)
    pre = Preprocessor.fit(used)
    Z = pre.transform(used)
    mlp = FraudMLP(epochs=2, batch_size=64, output=output).fit(Z, y)  # type: ignore[arg-type]
    stack = StackingEnsemble(base_learners=("dt", "lr"), n_folds=2).fit(Z, y)
    bundle = ModelBundle(
        input_names=FEATURE_NAMES,
        used_features=TINY_FEATURES,
        preprocessor=pre,
        mlp=mlp,
        stack=stack,
        thresholds={"mlp": 0.5, "stack": 0.5, "blend": 0.5},
        feature_spec_hash=feature_spec_hash(),
    )
    X = np.zeros((n, len(FEATURE_NAMES)))
    X[:, [FEATURE_NAMES.index(name) for name in TINY_FEATURES]] = used
    return bundle, X


@pytest.fixture(scope="module")
def softmax_bundle() -> tuple[ModelBundle, np.ndarray]:
    return _mlp_and_stack_bundle()


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory, softmax_bundle: tuple[ModelBundle, np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp("lean-registry")
    bundle, _ = softmax_bundle
    ModelRegistry(root, allow_unsigned=True).publish(
        bundle, metrics={"average_precision": 0.5}, holdout_id="h", data_range=("a", "b"), seed=0, force=True
    )
    return root


@pytest.fixture(scope="module")
def records_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    txns = simulated_transactions(customers=10, merchants=12, days=3)[:60]
    path = tmp_path_factory.mktemp("lean-records") / "records.json"
    path.write_text(json.dumps([[t.user_id, t.model_dump_json()] for t in txns]))
    return path


def _run_fresh(code: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("scorer", "never"),
    [("mlp", MLP_WORKER_NEVER), ("blend", (*TRAINING_ONLY, "matplotlib")), ("stack", (*TRAINING_ONLY, "matplotlib"))],
)
def test_worker_start_up_and_scoring_import_no_tensorflow(
    registry_root: Path, records_file: Path, scorer: str, never: tuple[str, ...]
) -> None:
    args = {
        "registry": str(registry_root),
        "scorer": scorer,
        "records": str(records_file),
        "headers": [[k, (v or b"").decode()] for k, v in txn_headers()],
    }
    out = _run_fresh(WORKER, json.dumps(args))
    assert out["records"] >= 20 and out["scored"] == out["records"] and out["dlq"] == 0
    assert out["messages"] >= out["scored"] and out["device"] == "CPU"
    assert sorted(set(never) & set(out["modules"])) == []
    assert ("stack" in out["scorers"]) == (scorer != "mlp")


def test_fraudstream_stream_help_imports_no_tensorflow() -> None:
    code = (
        "import sys\nfrom fraudstream.cli import app\n"
        "try:\n    app(['stream', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "import json\nprint(json.dumps({'modules': sorted({m.split('.')[0] for m in sys.modules})}))"
    )
    out = _run_fresh(code)
    assert sorted(set(MLP_WORKER_NEVER) & set(out["modules"])) == []


def test_unpickled_fraudmlp_scores_without_keras_and_rebuilds_keras_on_demand(
    softmax_bundle: tuple[ModelBundle, np.ndarray],
) -> None:
    bundle, _ = softmax_bundle
    assert bundle.mlp is not None
    rows = np.random.default_rng(3).normal(size=(40, len(TINY_FEATURES)))
    code = (
        "import json, pickle, sys\nimport numpy as np\n"
        "mlp = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
        "p = mlp.predict_proba(np.array(json.loads(sys.argv[2])))[:, 1]\n"
        "print(json.dumps({'p': p.tolist(), 'modules': sorted({m.split('.')[0] for m in sys.modules})}))"
    )
    out = _run_fresh(code, pickle.dumps(bundle.mlp).hex(), json.dumps(rows.tolist()))
    assert sorted(set(TRAINING_ONLY) & set(out["modules"])) == []
    np.testing.assert_allclose(out["p"], bundle.mlp.numpy_forward(rows), rtol=0, atol=1e-12)
    restored = pickle.loads(pickle.dumps(bundle.mlp))
    assert "model_" not in vars(restored)
    np.testing.assert_allclose(restored.keras_predict(rows), bundle.mlp.numpy_forward(rows), rtol=0, atol=1e-6)
    assert "model_" in vars(restored) and "_keras_bytes" not in vars(restored)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_numpy_scores_from_exported_weights_equal_keras_predict(tmp_path: Path, output: str) -> None:
    """The registry's NumPy path (what the worker runs) vs model.predict of the saved mlp.keras, same rows."""
    import keras

    bundle, X = _mlp_and_stack_bundle(output)
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = reg.publish(bundle, metrics={"average_precision": 0.5}, holdout_id="h", data_range=("a", "b"), seed=0)
    loaded = reg.load(version, device="auto", scorers=("mlp",))
    assert loaded.device == "CPU" and loaded.scorers == ("mlp",)
    reference = keras.saving.load_model(tmp_path / "versions" / version / "mlp.keras", compile=False)
    used = X[:, [bundle.input_names.index(name) for name in bundle.used_features]]
    keras_out = np.asarray(reference.predict(bundle.preprocessor.transform(used).astype(np.float32), verbose=0))
    expected = keras_out[:, 0] if output == "sigmoid" else keras_out[:, 1]
    np.testing.assert_allclose(loaded.score(X, "mlp"), expected, rtol=0, atol=1e-6)


def test_loading_for_the_mlp_never_unpickles_the_stack(
    tmp_path: Path, softmax_bundle: tuple[ModelBundle, np.ndarray]
) -> None:
    from fraudstream.errors import ArtifactIntegrityError, ModelError

    bundle, X = softmax_bundle
    reg = ModelRegistry(tmp_path, allow_unsigned=True)
    version = reg.publish(bundle, metrics={"average_precision": 0.5}, holdout_id="h", data_range=("a", "b"), seed=0)
    stack_file = tmp_path / "versions" / version / "stack.skops"
    manifest = json.loads((stack_file.parent / "manifest.json").read_text())
    lean = reg.load(version, scorers=("mlp",))
    assert lean.scorers == ("mlp",)
    with pytest.raises(ModelError, match="loaded without its stack"):
        lean.score(X[:5], "stack")
    full = reg.load(version)
    assert full.scorers == ("mlp", "stack", "blend")
    np.testing.assert_allclose(lean.score(X, "mlp"), full.score(X, "mlp"), rtol=0, atol=0)
    with pytest.raises(ModelError, match="unknown scorer"):
        reg.load(version, scorers=("gbm",))
    assert manifest["files"]["stack.skops"]
    stack_file.write_bytes(b"not a skops file")  # a tampered file is still refused, even when not loaded
    with pytest.raises(ArtifactIntegrityError):
        reg.load(version, scorers=("mlp",))


def test_a_forest_stack_is_published_flat_and_its_worker_imports_no_scikit_learn(
    tmp_path: Path, records_file: Path
) -> None:
    """A random forest in the stack slot is loaded from its node arrays: a blend worker then imports neither
    scikit-learn nor pandas, and scores and explains exactly as the scikit-learn forest does."""
    from sklearn.ensemble import RandomForestClassifier

    from models.registry import FOREST_FILE, _load_skops

    bundle, X = _mlp_and_stack_bundle()
    Z = bundle.preprocessor.transform(X[:, bundle.used_index])
    y = (Z[:, 0] - Z[:, 1] > 0.8).astype(int)
    forest = RandomForestClassifier(n_estimators=15, max_depth=8, random_state=0).fit(Z, y)
    bundle = ModelBundle(**{**vars(bundle), "stack": forest})
    registry = ModelRegistry(tmp_path, allow_unsigned=True)
    version = registry.publish(bundle, metrics={"average_precision": 0.5}, holdout_id="h", data_range=("a", "b"),
                               seed=0, force=True)  # fmt: skip
    assert FOREST_FILE in registry.manifest(version)["files"]
    flat = registry.load(version)
    assert type(flat._stack).__name__ == "FlatForest"
    skops_forest = _load_skops(version, tmp_path / "versions" / version / "stack.skops")
    np.testing.assert_array_equal(flat.score(X[:200], "stack"), skops_forest.predict_proba(Z[:200])[:, 1])
    rows = X[np.argsort(-flat.score(X, "blend", 0.25))[:30]]
    att = flat.attributions(rows, "blend", 0.25)
    np.testing.assert_allclose(att.base + att.values.sum(axis=1), flat.score(rows, "blend", 0.25), atol=1e-9)
    args = {"registry": str(tmp_path), "scorer": "blend", "records": str(records_file),
            "headers": [[k, (v or b"").decode()] for k, v in txn_headers()]}  # fmt: skip
    out = _run_fresh(WORKER, json.dumps(args))
    assert out["scored"] == out["records"] >= 20 and out["version"] == version and "blend" in out["scorers"]
    assert sorted({"sklearn", "pandas", *TRAINING_ONLY} & set(out["modules"])) == []
