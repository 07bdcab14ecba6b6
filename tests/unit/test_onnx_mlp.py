"""The MLP's ONNX graph (models/onnx_mlp.py) against the NumPy forward pass, on onnxruntime's CPU provider.

This is the check CI always runs: the CUDA path runs the same graph on another execution provider
(tests/unit/test_gpu_scoring.py, skipped without a GPU). It also checks the routing by batch size and that the
NumPy path imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream.errors import ModelError
from models.forward import numpy_forward_from_weights
from models.onnx_mlp import OnnxMLP, mlp_graph

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-6


def _weights(rng: np.random.Generator, sizes: tuple[int, ...], scale: float = 1.0) -> list[np.ndarray]:
    out = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        out += [rng.normal(0.0, scale, size=(fan_in, fan_out)), rng.normal(0.0, scale, size=fan_out)]
    return out


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("sizes", [(7, 1), (12, 30, 16, 16, 1), (5, 64, 1)])
def test_the_graph_equals_the_numpy_forward_pass(output: str, activation: str, sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(sizes) * 10 + len(output) + len(activation))
    last = 1 if output == "sigmoid" else 2
    weights = _weights(rng, (*sizes[:-1], last))
    Z = rng.normal(0.0, 3.0, size=(2000, sizes[0]))
    expected = numpy_forward_from_weights(weights, Z, output, activation)
    got = OnnxMLP(weights, output, activation, "cpu")(Z)
    assert got.shape == expected.shape == (2000,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    assert 0.01 < float(np.std(expected))  # the rows spread the probabilities: a wrong graph cannot hide


def test_saturated_logits_are_clipped_as_numpy_clips_them() -> None:
    """Logits far past +-500 (NumPy clips before exp): the graph gives the same 0s and 1s, never NaN."""
    rng = np.random.default_rng(3)
    weights = _weights(rng, (4, 8, 1), scale=60.0)
    Z = rng.normal(0.0, 5.0, size=(500, 4))
    expected = numpy_forward_from_weights(weights, Z, "sigmoid")
    got = OnnxMLP(weights, "sigmoid", "relu", "cpu")(Z)
    assert np.isfinite(got).all() and ((expected == 0.0) | (expected == 1.0)).any()
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_one_row_and_empty_batches() -> None:
    rng = np.random.default_rng(4)
    weights = _weights(rng, (6, 5, 2))
    run = OnnxMLP(weights, "softmax", "relu", "cpu")
    one = rng.normal(size=(1, 6))
    np.testing.assert_allclose(run(one), numpy_forward_from_weights(weights, one, "softmax"), rtol=0, atol=TOLERANCE)
    assert run(np.zeros((0, 6))).shape == (0,)


def test_the_graph_is_a_valid_onnx_model_of_the_weights() -> None:
    import onnx

    rng = np.random.default_rng(5)
    model = mlp_graph(_weights(rng, (9, 4, 1)), "sigmoid", "tanh")
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["MatMul", "Add", "Tanh", "MatMul", "Add", "Gather", "Clip", "Sigmoid"]
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["rows", 9]


@pytest.mark.parametrize(
    ("weights", "output", "activation", "match"),
    [([np.ones((2, 1))], "sigmoid", "relu", "W0, b0"), ([np.ones((2, 1)), np.zeros(1)], "linear", "relu", "output"),
     ([np.ones((2, 1)), np.zeros(1)], "sigmoid", "gelu", "activation")],
)
def test_weights_the_graph_cannot_express_are_refused(
    weights: list[np.ndarray], output: str, activation: str, match: str
) -> None:
    with pytest.raises(ModelError, match=match):
        mlp_graph(weights, output, activation)


def test_cuda_is_refused_in_one_line_by_the_cpu_build() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider (onnxruntime-gpu): tests/unit/test_gpu_scoring.py")
    with pytest.raises(ModelError, match=r"no CUDAExecutionProvider.*fraudstream\[gpu\]"):
        OnnxMLP([np.ones((2, 1)), np.zeros(1)], "sigmoid", "relu", "cuda")


# -- through the registry: a trained FraudMLP's exported weights ------------------------------------------------


def _publish_mlp_and_stack(root: Path, output: str) -> tuple[str, np.ndarray]:
    from features.spec import FEATURE_NAMES, feature_spec_hash
    from models.bundle import ModelBundle
    from models.mlp import FraudMLP
    from models.preprocess import Preprocessor
    from models.registry import ModelRegistry
    from models.stacking import StackingEnsemble
    from tests.streamer_support import TINY_FEATURES

    rng = np.random.default_rng(0)
    n = 600
    used = rng.normal(size=(n, len(TINY_FEATURES))) * np.array([1.0, 2.0, 0.5, 3.0])
    y = (used[:, 0] - used[:, 1] + 0.5 * rng.normal(size=n) > 1.0).astype(int)
    pre = Preprocessor.fit(used, clip_quantile=0.01)
    Z = pre.transform(used)
    bundle = ModelBundle(
        input_names=FEATURE_NAMES, used_features=TINY_FEATURES, preprocessor=pre,
        mlp=FraudMLP(epochs=2, batch_size=64, output=output).fit(Z, y),  # type: ignore[arg-type]
        stack=StackingEnsemble(base_learners=("dt", "lr"), n_folds=2).fit(Z, y),
        thresholds={"mlp": 0.5, "stack": 0.5, "blend": 0.5}, feature_spec_hash=feature_spec_hash(),
    )
    version = ModelRegistry(root, allow_unsigned=True).publish(
        bundle, metrics={"average_precision": 0.5}, holdout_id="h", data_range=("a", "b"), seed=0, force=True)
    X = np.zeros((n, len(FEATURE_NAMES)))
    X[:, [FEATURE_NAMES.index(name) for name in TINY_FEATURES]] = used
    X[::17, FEATURE_NAMES.index(TINY_FEATURES[0])] = np.nan  # imputed by the preprocessor before either path
    return version, X


@pytest.fixture(scope="module", params=["softmax", "sigmoid"])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, np.ndarray]:
    root = tmp_path_factory.mktemp(f"onnx-registry-{request.param}")
    version, X = _publish_mlp_and_stack(root, request.param)
    return root, version, X


def test_a_registry_model_scores_the_same_on_onnx_cpu_as_on_numpy(published: tuple[Path, str, np.ndarray]) -> None:
    from models.registry import ModelRegistry

    root, version, X = published
    registry = ModelRegistry(root, allow_unsigned=True)
    cpu = registry.load(version, device="cpu")
    onnx_cpu = registry.load(version, device="onnx-cpu", gpu_min_batch=1)
    assert (cpu.device, onnx_cpu.device) == ("CPU", "onnx-cpu")
    for scorer in ("mlp", "blend"):
        expected = cpu.score(X, scorer)  # type: ignore[arg-type]
        assert 0.01 < float(np.std(expected))
        np.testing.assert_allclose(onnx_cpu.score(X, scorer), expected, rtol=0, atol=TOLERANCE)  # type: ignore[arg-type]
    np.testing.assert_array_equal(onnx_cpu.score(X, "stack"), cpu.score(X, "stack"))  # the stack stays on the CPU


class _Counting:
    """The real ONNX session, counting the rows it was given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []  # type: ignore[var-annotated]

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        self.calls.append(Z.shape[0])
        return np.asarray(self.inner(Z))


def test_calls_below_gpu_min_batch_stay_on_numpy(published: tuple[Path, str, np.ndarray]) -> None:
    from models.registry import ModelRegistry

    root, version, X = published
    model = ModelRegistry(root, allow_unsigned=True).load(version, device="onnx-cpu", gpu_min_batch=100,
                                                            scorers=("mlp",))
    counting = _Counting(model._onnx)
    model._onnx = counting
    reference = ModelRegistry(root, allow_unsigned=True).load(version, device="cpu", scorers=("mlp",))
    for rows in (1, 99, 100, 600):
        np.testing.assert_allclose(model.score(X[:rows], "mlp"), reference.score(X[:rows], "mlp"), rtol=0,
                                   atol=TOLERANCE)
    assert counting.calls == [100, 600]


def test_an_unknown_device_is_refused(published: tuple[Path, str, np.ndarray]) -> None:
    from models.registry import ModelRegistry

    root, version, _ = published
    with pytest.raises(ModelError, match="unknown model device 'gpu'; use cpu, cuda or onnx-cpu"):
        ModelRegistry(root, allow_unsigned=True).load(version, device="gpu")


LEAN = r"""
import json, sys
import numpy as np
from fraudstream.settings import build_settings
from models.registry import ModelRegistry
from streamer.runtime import scoring_device

root, version, device = sys.argv[1:4]
settings = build_settings({"streamer": {"device": device}}, environ={})
chosen = scoring_device(settings)
model = ModelRegistry(root, allow_unsigned=True).load(version, device=chosen.kind, scorers=("mlp",))
scores = model.score(np.zeros((3, len(model.feature_names))), "mlp")
print(json.dumps({"kind": chosen.kind, "device": model.device, "n": len(scores),
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_the_numpy_path_imports_neither_onnx_nor_onnxruntime(
    published: tuple[Path, str, np.ndarray], device: str
) -> None:
    """device cpu, and auto on a machine without onnxruntime-gpu (CI): no onnx, no onnxruntime, no TensorFlow."""
    from models.device import probe_cuda

    if device == "auto" and probe_cuda().device_name is not None:
        pytest.skip("auto picks the GPU here (tests/unit/test_gpu_scoring.py)")
    root, version, _ = published
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    proc = subprocess.run([sys.executable, "-c", LEAN, str(root), version, device], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["kind"], out["device"], out["n"]) == ("cpu", "CPU", 3)
    assert {"onnx", "onnxruntime", "tensorflow", "keras"} & set(out["modules"]) == set()
