"""FRAUD_STREAMER__DEVICE resolved against an injected probe (models/device.py, streamer.runtime.scoring_device), the
real probe on this machine, and `fraudstream stream` refusing cuda in one line where there is no usable device."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fraudstream.errors import ConfigError, ExitCode
from fraudstream.settings import build_settings
from models.device import CudaProbe, probe_cuda, resolve_device
from streamer.runtime import scoring_device
from tests.cli_helpers import run_cli

NONE = CudaProbe(None, "onnxruntime-gpu is not installed (pip install 'fraudstream[gpu]')")
H200 = CudaProbe("NVIDIA H200")


def _never() -> CudaProbe:
    raise AssertionError("device cpu must not probe")


def test_cpu_never_probes() -> None:
    device = resolve_device("cpu", _never)
    assert (device.kind, device.label, device.why_cpu) == ("cpu", "cpu", "")


def test_auto_without_a_usable_device_is_the_cpu_and_keeps_the_reason() -> None:
    device = resolve_device("auto", lambda: NONE)
    assert (device.kind, device.label) == ("cpu", "cpu")
    assert device.why_cpu == NONE.reason


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_auto_and_cuda_take_a_usable_device_with_its_name(requested: str) -> None:
    device = resolve_device(requested, lambda: H200)
    assert (device.kind, device.name, device.label) == ("cuda", "NVIDIA H200", "cuda:0 (NVIDIA H200)")


def test_cuda_without_a_usable_device_is_a_configuration_error_that_says_why() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_device("cuda", lambda: NONE)
    message = str(caught.value)
    assert "FRAUD_STREAMER__DEVICE=cuda" in message and NONE.reason in message and "auto or cpu" in message
    assert "\n" not in message and caught.value.exit_code == ExitCode.USAGE


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ConfigError, match="FRAUD_STREAMER__DEVICE=tpu is not a device"):
        resolve_device("tpu", lambda: H200)


def test_the_setting_accepts_the_three_devices_only() -> None:
    assert build_settings(environ={}).streamer.device == "auto"
    for value in ("auto", "cpu", "cuda"):
        assert build_settings(environ={"FRAUD_STREAMER__DEVICE": value}).streamer.device == value
    with pytest.raises(ConfigError, match="FRAUD_STREAMER__DEVICE: Input should be 'auto', 'cpu' or 'cuda'"):
        build_settings(environ={"FRAUD_STREAMER__DEVICE": "gpu"})
    with pytest.raises(ConfigError, match="FRAUD_STREAMER__GPU_MIN_BATCH"):
        build_settings(environ={"FRAUD_STREAMER__GPU_MIN_BATCH": "0"})


def test_the_start_logs_where_it_scores_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = build_settings({"streamer": {"poll_batch_size": 8192, "micro_batch_max_size": 8192}}, environ={})
    with caplog.at_level(logging.INFO, logger="streamer.runtime"):
        assert scoring_device(settings, lambda: H200).kind == "cuda"
        assert scoring_device(settings, lambda: NONE).kind == "cpu"
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("scoring on cuda:0 (NVIDIA H200): model calls of 4096+ rows on the GPU")
    assert lines[1] == f"scoring on cpu (device auto: {NONE.reason})"
    assert len(lines) == 2


def test_a_gpu_the_batches_never_reach_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    settings = build_settings({"streamer": {"device": "cuda", "micro_batch_max_size": 1024}}, environ={})
    with caplog.at_level(logging.INFO, logger="streamer.runtime"):
        scoring_device(settings, lambda: H200)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["model calls are at most 1024 rows (micro_batch_max_size, poll_batch_size), fewer than "
                        "gpu_min_batch 4096: every call stays on the CPU; raise them to use the GPU"]


def test_the_real_probe_answers_without_raising() -> None:
    found = probe_cuda()
    assert (found.device_name is None) == bool(found.reason)


@pytest.mark.skipif(probe_cuda().device_name is not None, reason="this machine has a usable CUDA device")
def test_stream_with_cuda_and_no_device_ends_with_one_line_and_exit_2(tmp_path: Path) -> None:
    """Before waiting for Kafka and Redis (none is running for this test: it must not get that far)."""
    from models.tiny import publish_tiny_model

    publish_tiny_model(tmp_path / "registry")
    result = run_cli("stream", "--wait-timeout", "0", env={
        "FRAUD_REGISTRY__PATH": str(tmp_path / "registry"), "FRAUD_STREAMER__DEVICE": "cuda",
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "FRAUD_REDIS__URL": "redis://127.0.0.1:9/0",
        "FRAUD_EMBEDDED__STATE_DIR": str(tmp_path / "state")})
    assert result.code == ExitCode.USAGE, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "FRAUD_STREAMER__DEVICE=cuda but there is no usable CUDA device" in lines[0], result.err
