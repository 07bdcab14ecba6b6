"""The MLP's forward pass as an ONNX graph built from its exported Dense weights, run by onnxruntime.

The graph computes what models/forward.py computes, op for op and in float64 (so it agrees with NumPy to rounding,
far inside 1e-6): per Dense layer MatMul then Add of the bias, Relu or Tanh between layers, then Sigmoid of the
first output column after clipping it to [-500, 500], or the second column of a Softmax over the outputs. The
scaler (models/preprocess.py) is not part of it: LoadedModel imputes, clips and standardises once per batch on the
CPU, because the stack and the alert reasons need the same standardised rows.

onnx and onnxruntime come from extras ([dev] has the CPU build, [gpu] onnxruntime-gpu with the CUDA execution
provider) and are imported only here, only when a model is loaded for device "onnx-cpu" or "cuda": the NumPy path
(device "cpu", the default) never imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fraudstream.errors import ModelError

#: The opset the graph is written against: every op in it (MatMul, Add, Relu, Tanh, Clip, Sigmoid, Softmax on one
#: axis, Gather) has float64 kernels on onnxruntime's CPU and CUDA execution providers at this opset.
OPSET = 17
IR_VERSION = 8
INPUT = "z"
OUTPUT = "p"
Provider = Literal["cpu", "cuda"]
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def mlp_graph(weights: Sequence[np.ndarray], output: str, activation: str = "relu") -> Any:
    """The onnx.ModelProto of the forward pass: input `z` (rows x features, float64), output `p` (rows, float64)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if len(weights) < 2 or len(weights) % 2:
        raise ModelError(f"MLP weights must be [W0, b0, W1, b1, ...]; got {len(weights)} arrays")
    if output not in ("sigmoid", "softmax"):
        raise ModelError(f"unknown MLP output '{output}'; the exported weights support sigmoid or softmax")
    if activation not in ("relu", "tanh"):
        raise ModelError(f"unknown MLP activation '{activation}'; the exported weights support relu or tanh")
    initializers, nodes = [], []
    h = INPUT
    n_layers = len(weights) // 2
    for i in range(n_layers):
        W = np.ascontiguousarray(weights[2 * i], dtype=np.float64)
        b = np.ascontiguousarray(weights[2 * i + 1], dtype=np.float64)
        initializers += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"W{i}"], [f"matmul{i}"]),
                  helper.make_node("Add", [f"matmul{i}", f"b{i}"], [f"dense{i}"])]
        h = f"dense{i}"
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu" if activation == "relu" else "Tanh", [h], [f"hidden{i}"]))
            h = f"hidden{i}"
    if output == "sigmoid":
        initializers += [numpy_helper.from_array(np.array(0, dtype=np.int64), "column"),
                         numpy_helper.from_array(np.array(-500.0), "clip_low"),
                         numpy_helper.from_array(np.array(500.0), "clip_high")]
        nodes += [helper.make_node("Gather", [h, "column"], ["logit"], axis=1),
                  helper.make_node("Clip", ["logit", "clip_low", "clip_high"], ["clipped"]),
                  helper.make_node("Sigmoid", ["clipped"], [OUTPUT])]
    else:
        initializers.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "column"))
        nodes += [helper.make_node("Softmax", [h], ["probabilities"], axis=1),
                  helper.make_node("Gather", ["probabilities", "column"], [OUTPUT], axis=1)]
    n_inputs = int(np.asarray(weights[0]).shape[0])
    graph = helper.make_graph(
        nodes, "fraudstream_mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, ["rows", n_inputs])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, ["rows"])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="fraudstream")
    onnx.checker.check_model(model)
    return model


def onnxruntime_module() -> Any:
    """onnxruntime, with the CUDA and cuDNN libraries of onnxruntime-gpu[cuda,cudnn] preloaded where it has them."""
    global _preloaded
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(
            "onnxruntime is not installed: pip install 'fraudstream[gpu]' (CUDA) or the [dev] extra (CPU build)"
        ) from exc
    if not _preloaded and "CUDAExecutionProvider" in ort.get_available_providers() and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # the nvidia-* wheels' libraries, so no LD_LIBRARY_PATH is needed
        _preloaded = True
    return ort


_preloaded = False


class OnnxMLP:
    """One onnxruntime session of the MLP's graph on one execution provider; call it with standardised rows."""

    def __init__(self, weights: Sequence[np.ndarray], output: str, activation: str, provider: Provider,
                 device_id: int = 0) -> None:
        ort = onnxruntime_module()
        wanted = _PROVIDER_NAMES[provider]
        if wanted not in ort.get_available_providers():
            raise ModelError(f"this onnxruntime ({ort.__version__}) has no {wanted}; for CUDA install "
                             "fraudstream[gpu] (onnxruntime-gpu) in place of the CPU build onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: a failed CUDA start is raised below in one line
        providers: list[Any] = ["CPUExecutionProvider"]
        if provider == "cuda":
            options.intra_op_num_threads = 1  # the host side only copies and launches
            providers = [(wanted, {"device_id": device_id}), "CPUExecutionProvider"]
        graph = mlp_graph(weights, output, activation)
        self.session = ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        if self.session.get_providers()[0] != wanted:  # onnxruntime falls back to the CPU silently
            raise ModelError(f"onnxruntime could not start {wanted} (CUDA or cuDNN libraries missing, or the NVIDIA "
                             "driver older than onnxruntime-gpu's CUDA); see the README's GPU scoring section")
        self.provider = provider

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(Z, dtype=np.float64)})[0]
        return np.asarray(out, dtype=np.float64)
