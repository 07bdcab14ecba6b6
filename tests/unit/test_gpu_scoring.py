"""The MLP on CUDA (onnxruntime-gpu's CUDA execution provider) against the NumPy path: skipped, with the probe's reason,
where there is no usable CUDA device (CI never has one). On a GPU machine: README, GPU scoring."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from models.device import probe_cuda, resolve_device
from models.forward import numpy_forward_from_weights

CUDA = probe_cuda()
pytestmark = pytest.mark.skipif(CUDA.device_name is None, reason=f"no usable CUDA device: {CUDA.reason}")
TOLERANCE = 1e-6


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("rows", [1, 1000, 65536])
def test_the_graph_on_cuda_equals_numpy(output: str, rows: int) -> None:
    from models.onnx_mlp import OnnxMLP

    rng = np.random.default_rng(rows)
    sizes = (24, 30, 16, 16, 1 if output == "sigmoid" else 2)
    weights = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        weights += [rng.normal(size=(fan_in, fan_out)), rng.normal(size=fan_out)]
    Z = rng.normal(0.0, 3.0, size=(rows, sizes[0]))
    run = OnnxMLP(weights, output, "relu", "cuda")
    assert run.session.get_providers()[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(run(Z), numpy_forward_from_weights(weights, Z, output), rtol=0, atol=TOLERANCE)


def test_cuda_is_resolved_with_the_device_name() -> None:
    device = resolve_device("cuda", probe_cuda)
    assert device.kind == "cuda" and device.label == f"cuda:0 ({CUDA.device_name})"


def test_a_registry_model_scores_the_same_on_cuda_as_on_numpy(tmp_path: Path) -> None:
    from models.registry import ModelRegistry
    from tests.unit.test_onnx_mlp import _publish_mlp_and_stack

    version, X = _publish_mlp_and_stack(tmp_path, "softmax")
    registry = ModelRegistry(tmp_path, allow_unsigned=True)
    cpu = registry.load(version, device="cpu")
    cuda = registry.load(version, device="cuda", gpu_min_batch=1)
    assert cuda.device == "cuda:0"
    for scorer in ("mlp", "blend"):
        np.testing.assert_allclose(cuda.score(X, scorer), cpu.score(X, scorer), rtol=0, atol=TOLERANCE)  # type: ignore[arg-type]
