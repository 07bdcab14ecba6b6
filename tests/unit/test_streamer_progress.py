"""The streamer's periodic progress line: per-batch accounting, publish-to-score from Kafka timestamps, lag apart."""

from __future__ import annotations

from typing import Any

from streamer.core import BatchCounts, BatchResult, BatchTimings
from streamer.metrics import StreamMetrics
from streamer.progress import ProgressLog

NOW = 1_800_000_000.0  # unix seconds of the "delivery"


def _batch(n: int, *, published_ms_ago: float, event_unix: float, alerts: int = 0) -> BatchResult:
    counts = BatchCounts(events=n, scored=n, alerts=alerts)
    return BatchResult(
        [], counts, BatchTimings(), {},
        event_times_s=[event_unix] * n,
        record_times_ms=[int(NOW * 1000 - published_ms_ago)] * n,
    )


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_one_line_per_interval_with_throughput_latency_lag_and_event_time_lag() -> None:
    clock, lines = Clock(), []
    metrics = StreamMetrics()
    metrics.set_lag([("transactions", 0, 30), ("transactions", 1, 12)])

    def emit(line: str, fields: dict[str, Any]) -> None:
        lines.append((line, fields))

    progress = ProgressLog(metrics, every_s=5.0, monotonic=clock, emit=emit)
    for _ in range(4):  # 4 batches in 4 s: no line yet
        clock.t += 1.0
        progress.observe(_batch(100, published_ms_ago=80, event_unix=NOW - 3600, alerts=1), NOW)
    assert lines == []
    clock.t += 1.0
    progress.observe(_batch(100, published_ms_ago=80, event_unix=NOW - 7200, alerts=1), NOW)
    assert len(lines) == 1
    line, fields = lines[0]
    assert fields["records"] == 500 and fields["records_per_s"] == 100.0 and fields["alerts"] == 5
    assert fields["lag_records"] == 42
    assert fields["publish_to_score_p50_ms"] == 80.0 and not fields["stamped_with_event_time"]
    assert fields["event_time_lag_s"] == 3600.0  # the newest event time, not the oldest
    assert "100 records/s" in line and "lag 42 records" in line and "p50 80 ms" in line
    assert "60.0 min behind the clock" in line
    clock.t += 1.0  # the next interval starts empty
    progress.observe(_batch(10, published_ms_ago=20, event_unix=NOW), NOW)
    progress.flush()
    assert lines[1][1]["records"] == 10 and lines[1][1]["publish_to_score_p50_ms"] == 20.0


def test_event_time_stamps_are_not_reported_as_latency() -> None:
    lines: list[str] = []
    progress = ProgressLog(None, every_s=0.0, emit=lambda line, _f: lines.append(line))
    two_years_ms = 2 * 365 * 86_400_000
    progress.observe(_batch(5, published_ms_ago=two_years_ms, event_unix=NOW - two_years_ms / 1000), NOW)
    assert "publish-to-score n/a (record timestamps are event times" in lines[0]
    assert "lag unknown" in lines[0] and "730.0 d behind the clock" in lines[0]
