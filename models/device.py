"""Where the MLP is scored: FRAUD_STREAMER__DEVICE (auto | cpu | cuda) resolved against a probe of the machine.

`resolve_device` is pure logic over an injected probe (unit-tested with fakes); `probe_cuda` is the real one: the
onnxruntime-gpu distribution installed ([gpu] extra), its CUDA execution provider built in, the NVIDIA driver
(libcuda.so.1) reporting a device, and a one-layer session really starting on CUDAExecutionProvider (onnxruntime
falls back to the CPU silently when a CUDA library is missing). It imports nothing unless onnxruntime-gpu is
installed, so the NumPy path stays free of onnxruntime.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

import numpy as np

from fraudstream.errors import ConfigError, FraudstreamError

log = logging.getLogger(__name__)

DeviceSetting = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class CudaProbe:
    """What a probe found: the name of CUDA device 0 when it can score, else why not."""

    device_name: str | None
    reason: str = ""


@dataclass(frozen=True)
class ScoringDevice:
    kind: Literal["cpu", "cuda"]
    name: str = ""  # the CUDA device's name ("NVIDIA H200"); "" on the CPU
    why_cpu: str = ""  # auto without a usable device: the probe's reason

    @property
    def label(self) -> str:
        return f"cuda:0 ({self.name})" if self.kind == "cuda" else "cpu"


def resolve_device(requested: str, probe: Callable[[], CudaProbe]) -> ScoringDevice:
    """cpu: the CPU, without probing. cuda: device 0, or ConfigError saying why not. auto: CUDA when usable."""
    if requested == "cpu":
        return ScoringDevice("cpu")
    if requested not in ("auto", "cuda"):
        raise ConfigError(f"FRAUD_STREAMER__DEVICE={requested} is not a device; use auto, cpu or cuda")
    found = probe()
    if found.device_name is not None:
        return ScoringDevice("cuda", found.device_name)
    if requested == "cuda":
        raise ConfigError(f"FRAUD_STREAMER__DEVICE=cuda but there is no usable CUDA device: {found.reason}; "
                          "set FRAUD_STREAMER__DEVICE=auto or cpu to score on the CPU")
    return ScoringDevice("cpu", why_cpu=found.reason)


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def driver_device_name(index: int = 0) -> tuple[str | None, str]:
    """CUDA device `index`'s name from the NVIDIA driver API (libcuda.so.1, part of the driver), or why there is none.

    The driver API honours CUDA_VISIBLE_DEVICES like onnxruntime does, so index 0 is the device it will use."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    if (rc := cuda.cuInit(0)) != 0:
        return None, f"the NVIDIA driver does not start CUDA (cuInit error {rc}; no device, or a driver problem)"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= index:
        return None, f"the NVIDIA driver reports {count.value} CUDA device(s)"
    device = ctypes.c_int(0)
    name = ctypes.create_string_buffer(256)
    if cuda.cuDeviceGet(ctypes.byref(device), index) != 0 or cuda.cuDeviceGetName(name, 256, device) != 0:
        return None, f"the NVIDIA driver cannot open CUDA device {index}"
    return name.value.decode(errors="replace") or "unnamed CUDA device", ""


def probe_cuda() -> CudaProbe:
    """The machine's answer (see the module's docstring); never raises."""
    if not _installed("onnxruntime-gpu"):
        return CudaProbe(None, "onnxruntime-gpu is not installed (pip install 'fraudstream[gpu]')")
    name, reason = driver_device_name(0)
    if name is None:
        return CudaProbe(None, reason)
    from models.onnx_mlp import OnnxMLP

    try:
        session = OnnxMLP([np.ones((1, 1)), np.zeros(1)], "sigmoid", "relu", "cuda")
        session(np.zeros((1, 1)))
    except FraudstreamError as exc:
        return CudaProbe(None, str(exc))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors: the probe says why and the caller decides
        return CudaProbe(None, f"onnxruntime failed on CUDA: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    return CudaProbe(name)
