"""A worker's progress line every few seconds: throughput, consumer lag, publish-to-score latency, event-time lag.

Both engines call `ProgressLog.observe(result, done_unix)` once per delivered batch (never per event); every
`every_s` seconds it logs one line at INFO:

    progress: 1,204 records/s (6,020 in 5.0 s; 5,990 events, 14 alerts, 0 dlq, 0 late); lag 35 records;
    publish-to-score p50 92 ms p99 310 ms; event time 2024-02-10T14:03:11Z (1,025.3 d behind the clock)

- publish-to-score: from each record's Kafka timestamp (the producer's send time unless the producer set it) to
  the moment the batch's outputs were delivered (exactly once: committed);
- event-time lag: the wall clock minus the newest event time scored, reported apart (a replay of old history is
  years behind by design, which says nothing about the worker's speed);
- lag: records behind the partition ends, as the engine last reported it to the metrics (0 when unknown).

When the record timestamps are themselves event times (`fraudstream publish --stamp event`, the default, keeps
them for replays by time), publish-to-score would measure the data's age; the line then says so instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from streamer.core import BatchResult
    from streamer.metrics import StreamMetrics

log = logging.getLogger("streamer.progress")

#: Seconds between two progress lines.
EVERY_S = 5.0
#: Broker timestamps older than this at scoring time are taken for event times, not send times.
STAMPED_WITH_EVENT_TIME_S = 86_400.0
#: Most latencies kept per interval for its percentiles (a fixed bound on memory).
WINDOW = 50_000


@dataclass
class Interval:
    """What the batches since the last line added up to."""

    records: int = 0
    events: int = 0
    alerts: int = 0
    dlq: int = 0
    late: int = 0
    latencies_s: list[np.ndarray] = field(default_factory=list)
    kept: int = 0
    newest_event_s: float | None = None

    def add_latencies(self, values: np.ndarray) -> None:
        if values.size and self.kept < WINDOW:
            self.latencies_s.append(values[: WINDOW - self.kept])
            self.kept += min(values.size, WINDOW - self.kept)


class ProgressLog:
    """Per-batch accounting and a periodic INFO line; `observe` is the engines' one-line hook."""

    def __init__(
        self,
        metrics: StreamMetrics | None = None,
        *,
        every_s: float = EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
        emit: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.every_s = every_s
        self._monotonic = monotonic
        self._emit = emit or _log_line
        self._since = monotonic()
        self._interval = Interval()
        self.lines = 0

    def observe(self, result: BatchResult, done_unix: float, records: int | None = None) -> None:
        """Account one delivered batch (`done_unix`: when its outputs were delivered or committed)."""
        c, i = result.counts, self._interval
        i.records += records if records is not None else c.events + c.dlq + c.labels
        i.events += c.events
        i.alerts += c.alerts
        i.dlq += c.dlq
        i.late += c.late
        if result.record_times_ms:
            i.add_latencies(done_unix - np.asarray(result.record_times_ms, dtype=np.float64) / 1000.0)
        if result.event_times_s:
            newest = max(result.event_times_s)
            i.newest_event_s = newest if i.newest_event_s is None else max(i.newest_event_s, newest)
        now = self._monotonic()
        if now - self._since >= self.every_s:
            self.flush(now, done_unix)

    def flush(self, now: float | None = None, now_unix: float | None = None) -> None:
        """Log the line for the interval so far and start the next one."""
        now = self._monotonic() if now is None else now
        elapsed = max(now - self._since, 1e-9)
        fields = progress_fields(self._interval, elapsed, self._lag(), time.time() if now_unix is None else now_unix)
        self._emit(format_progress(fields), fields)
        self.lines += 1
        self._since, self._interval = now, Interval()

    def _lag(self) -> int | None:
        if self.metrics is None:
            return None
        total, seen = 0, False
        for metric in self.metrics.consumer_lag.collect():
            for sample in metric.samples:
                total += int(sample.value)
                seen = True
        return total if seen else None


def progress_fields(interval: Interval, elapsed_s: float, lag: int | None, now_unix: float) -> dict[str, Any]:
    """The numbers of one progress line (also logged as structured fields)."""
    latencies = np.concatenate(interval.latencies_s) if interval.latencies_s else np.empty(0)
    p50 = float(np.percentile(latencies, 50)) if latencies.size else None
    p99 = float(np.percentile(latencies, 99)) if latencies.size else None
    newest = interval.newest_event_s
    return {
        "records": interval.records,
        "elapsed_s": round(elapsed_s, 2),
        "records_per_s": round(interval.records / elapsed_s, 1),
        "events": interval.events,
        "alerts": interval.alerts,
        "dlq": interval.dlq,
        "late": interval.late,
        "lag_records": lag,
        "publish_to_score_p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "publish_to_score_p99_ms": None if p99 is None else round(p99 * 1000, 1),
        "stamped_with_event_time": p50 is not None and p50 > STAMPED_WITH_EVENT_TIME_S,
        "newest_event_time": None if newest is None else datetime.fromtimestamp(newest, UTC).isoformat(),
        "event_time_lag_s": None if newest is None else round(now_unix - newest, 1),
    }


def format_progress(f: dict[str, Any]) -> str:
    """One line for a terminal or a log file."""
    parts = [
        f"progress: {f['records_per_s']:,.0f} records/s ({f['records']:,} in {f['elapsed_s']:.1f} s; "
        f"{f['events']:,} events, {f['alerts']:,} alerts, {f['dlq']:,} dlq, {f['late']:,} late)",
        "lag unknown" if f["lag_records"] is None else f"lag {f['lag_records']:,} records",
    ]
    if f["publish_to_score_p50_ms"] is None:
        parts.append("publish-to-score n/a (no transactions)")
    elif f["stamped_with_event_time"]:
        parts.append("publish-to-score n/a (record timestamps are event times; publish with --stamp send)")
    else:
        parts.append(f"publish-to-score p50 {f['publish_to_score_p50_ms']:,.0f} ms "
                     f"p99 {f['publish_to_score_p99_ms']:,.0f} ms")
    if f["newest_event_time"] is not None:
        parts.append(f"event time {f['newest_event_time'][:19]}Z ({_behind(f['event_time_lag_s'])})")
    return "; ".join(parts)


def _behind(seconds: float) -> str:
    ahead = seconds < 0
    s = abs(seconds)
    text = f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else (
        f"{s / 3600:.1f} h" if s < 172_800 else f"{s / 86_400:,.1f} d")
    return f"{text} {'ahead of' if ahead else 'behind'} the clock"


def _log_line(line: str, fields: dict[str, Any]) -> None:
    log.info("%s", line, extra={"event": "progress", "progress": fields})
