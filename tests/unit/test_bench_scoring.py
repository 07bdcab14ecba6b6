"""The bench's scoring table (bench/stages.scoring, bench/report.scoring_lines): the crossover batch size and the
columns side by side, CUDA's saying "no GPU" where there is none."""

from __future__ import annotations

from typing import Any

from bench.report import scoring_lines
from bench.stages import gpu_crossover


def _row(batch: int, numpy: int, cuda: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"batch": batch, "mlp_numpy_ms": 1.0, "mlp_numpy_rows_per_s": numpy, "stack_ms": 2.0,
                           "stack_rows_per_s": 5}
    if cuda is not None:
        row.update({"mlp_cuda_ms": 0.5, "mlp_cuda_rows_per_s": cuda, "mlp_cuda_max_abs_diff": 2e-16})
    return row


def test_the_crossover_is_where_cuda_wins_from_there_up() -> None:
    rows = [_row(1, 100, 10), _row(256, 1000, 2000), _row(1024, 3000, 2000), _row(4096, 3000, 9000),
            _row(16384, 3000, 30000)]
    assert gpu_crossover(rows) == 4096  # 256 wins alone, 1024 loses again: not a crossover
    assert gpu_crossover([_row(1, 100, 10), _row(16, 200, 20)]) is None
    assert gpu_crossover([_row(1, 100), _row(16, 200)]) is None  # no CUDA column


def test_without_a_gpu_the_cuda_column_says_so() -> None:
    sc = {"device": "cpu", "skipped": {"mlp_cuda": "no GPU (onnxruntime-gpu is not installed)"}, "crossover": None,
          "rows": [{**_row(1, 100), "mlp_onnx_cpu_ms": 0.9, "mlp_onnx_cpu_rows_per_s": 110,
                    "mlp_onnx_cpu_max_abs_diff": 1e-16}]}
    lines = scoring_lines(sc)
    header = next(line for line in lines if line.startswith("| batch"))
    assert header.split(" | ")[1:7] == ["MLP CPU (NumPy) ms", "rows/s", "MLP ONNX-CPU ms", "rows/s", "MLP CUDA ms",
                                        "rows/s"]
    assert "| 1 | 1.000 | 100 | 0.900 | 110 | no GPU | - | 2.000 | 5 |" in lines
    assert "- mlp_cuda: no GPU (onnxruntime-gpu is not installed)" in lines
    assert "- ONNX scores against NumPy's: max abs difference 1.0e-16" in lines


def test_with_a_gpu_the_crossover_is_reported() -> None:
    sc = {"device": "cuda:0 (NVIDIA H200)", "skipped": {"mlp_onnx_cpu": "onnxruntime is not installed"},
          "crossover": 4096, "rows": [_row(4096, 3000, 9000)]}
    lines = scoring_lines(sc)
    assert lines[0].startswith("Scoring, one model call per batch on cuda:0 (NVIDIA H200)")
    assert "| 4,096 | 1.000 | 3,000 | not installed | - | 0.500 | 9,000 | 2.000 | 5 |" in lines
    assert "- CUDA beats NumPy from batch 4096 up (streamer.gpu_min_batch)" in lines


def test_device_parity_compares_per_transaction() -> None:
    from bench.device_parity import DEVICE_LINE, compare

    same = compare({"a": 0.25, "b": 0.5}, {"a": 0.25, "b": 0.5 + 1e-9}, 1e-6)
    assert same["in_both"] == 2 and same["within_tolerance"] and same["max_abs_diff"] < 1e-8
    off = compare({"a": 0.25, "b": 0.5}, {"a": 0.26, "c": 0.5}, 1e-6)
    assert (off["only_cpu"], off["only_other"], off["in_both"], off["within_tolerance"]) == (1, 1, 1, False)
    assert compare({}, {}, 1e-6)["within_tolerance"] is False  # nothing scored proves nothing
    line = "INFO streamer.runtime: scoring on cuda:0 (NVIDIA H200): model calls of 1+ rows on the GPU"
    found = DEVICE_LINE.search(line)
    assert found is not None and found.group(1) == "cuda:0 (NVIDIA H200)"
