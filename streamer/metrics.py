"""Prometheus metrics of the streamer on a registry passed in (no global default registry), and an HTTP exporter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric

if TYPE_CHECKING:
    from streamer.core import BatchResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400)
_BATCH_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 16_384, 65_536)
_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class BatchHistogram:
    """A Prometheus histogram fed a whole batch of values in one numpy call (no Python call per value).

    Same exposition as prometheus_client's Histogram: cumulative `le` buckets, `_count` and `_sum`.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._upper = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(self._upper) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()  # the exporter's thread reads while the worker writes
        registry.register(self)

    def observe_many(self, values: Sequence[float] | np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return
        # le semantics: a value equal to a bound counts in that bound's bucket
        counts = np.bincount(np.searchsorted(self._upper, v, side="left"), minlength=len(self._counts))
        with self._lock:
            self._counts += counts
            self._sum += float(v.sum())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative, total = np.cumsum(self._counts), self._sum
        bounds = [*(_bound_text(b) for b in self._upper), "+Inf"]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=list(zip(bounds, cumulative.tolist(), strict=True)),
            sum_value=total,
        )


class RecentValues:
    """The most recent `capacity` values in one array allocated up front: memory is fixed from the first value."""

    def __init__(self, capacity: int) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._next = 0  # where the next value goes
        self._filled = 0

    def extend(self, values: Sequence[float] | np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()[-len(self._values) :]
        capacity = len(self._values)
        self._values[(self._next + np.arange(len(v))) % capacity] = v
        self._next = (self._next + len(v)) % capacity
        self._filled = min(self._filled + len(v), capacity)

    def values(self) -> np.ndarray:
        """A copy of the kept values, in no particular order (for percentiles)."""
        return self._values[: self._filled].copy()

    def __len__(self) -> int:
        return self._filled


def _bound_text(bound: float) -> str:
    return repr(float(bound))


class StreamMetrics:
    """Every streamer metric, on its own CollectorRegistry (tests create as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("fraudstream_events", "Transaction records validated", registry=r)
        self.scored = Counter("fraudstream_scored", "Transactions scored", registry=r)
        self.alerts = Counter("fraudstream_alerts", "Alerts produced", registry=r)
        self.dlq = Counter("fraudstream_dead_letters", "Records routed to the dead-letter topic", registry=r)
        self.late = Counter("fraudstream_late_events", "Late transactions routed to the late topic", registry=r)
        self.labels = Counter("fraudstream_labels", "Labels applied to merchant state", registry=r)
        self.replayed = Counter("fraudstream_replayed", "Records replayed with their cached outputs", registry=r)
        self.batch_size = Histogram(
            "fraudstream_batch_size", "Records per processed batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.score_seconds = Histogram(
            "fraudstream_score_seconds", "Model scoring time per batch", buckets=_TIME_BUCKETS, registry=r
        )
        self.redis_seconds = Histogram(
            "fraudstream_redis_seconds", "Redis time per batch", buckets=_TIME_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "fraudstream_batch_seconds", "Core processing time per batch", buckets=_TIME_BUCKETS, registry=r
        )
        self.e2e_latency = BatchHistogram(
            "fraudstream_end_to_end_latency_seconds", "Event timestamp to output committed", _LATENCY_BUCKETS, r
        )
        self.broker_latency = BatchHistogram(
            "fraudstream_broker_latency_seconds", "Kafka record timestamp to output committed", _LATENCY_BUCKETS, r
        )
        self.consumer_lag = Gauge(
            "fraudstream_consumer_lag", "Records behind the partition end", ["topic", "partition"], registry=r
        )
        self.redis_retries = Counter(
            "fraudstream_state_store_retries", "Batches retried because Redis failed", registry=r
        )
        self.model_info = Info("fraudstream_model", "Model version in use", registry=r)
        self.last_batch_unix = Gauge("fraudstream_last_batch_unixtime", "When the last batch finished", registry=r)
        # drift (streamer/drift_watch.py): the last closed hour of event time
        self.drift_watched = Gauge("fraudstream_drift_watched", "1 when the model in use has a drift reference",
                                   registry=r)  # fmt: skip
        self.drift_psi = Gauge("fraudstream_drift_psi", "PSI of the last closed hour against the training reference",
                               ["kind", "name"], registry=r)  # fmt: skip
        self.drift_alert_rate = Gauge("fraudstream_drift_alert_rate", "Alerts per scored event, last closed hour",
                                      registry=r)  # fmt: skip
        self.drift_precision = Gauge("fraudstream_drift_precision",
                                     "Analysts' fraud verdicts per verdict, last closed hour with verdicts",
                                     registry=r)  # fmt: skip
        self.drift_hour_unix = Gauge("fraudstream_drift_hour_unixtime", "Start of the last closed hour", registry=r)
        self.drift_hours = Counter("fraudstream_drift_hours", "Hours closed by the drift watch", registry=r)
        self.drift_retrain = Counter("fraudstream_drift_retrain_hours", "Closed hours whose PSI crossed the threshold",
                                     registry=r)  # fmt: skip

    def observe_batch(self, result: BatchResult) -> None:
        c, t = result.counts, result.timings
        self.events.inc(c.events)
        self.scored.inc(c.scored)
        self.alerts.inc(c.alerts)
        self.dlq.inc(c.dlq)
        self.late.inc(c.late)
        self.labels.inc(c.labels)
        self.replayed.inc(c.replayed)
        self.batch_size.observe(c.events + c.dlq + c.labels)
        self.score_seconds.observe(t.score_s)
        self.redis_seconds.observe(t.redis_s)
        self.batch_seconds.observe(t.total_s)
        if result.model_version:
            self.set_model_version(result.model_version)

    def observe_drift(self, record: dict[str, Any]) -> None:
        """One closed hour's drift record (streamer/drift_watch.py)."""
        self.drift_hours.inc()
        self.drift_hour_unix.set(record["hour_start_unix"])
        if record["retrain"]:
            self.drift_retrain.inc()
        if record["psi_score"] is not None:
            self.drift_psi.labels(kind="score", name=record["scorer"]).set(record["psi_score"])
        for name, value in record["psi_features"].items():
            if value is not None:
                self.drift_psi.labels(kind="feature", name=name).set(value)
        if record["alert_rate"] is not None:
            self.drift_alert_rate.set(record["alert_rate"])
        if record["precision"] is not None:
            self.drift_precision.set(record["precision"])

    def observe_committed(self, result: BatchResult, now_unix: float | None = None) -> None:
        """Latencies once the batch's outputs are committed (called by the engine)."""
        now = time.time() if now_unix is None else now_unix
        if result.event_times_s:
            self.e2e_latency.observe_many(np.maximum(now - np.asarray(result.event_times_s), 0.0))
        if result.record_times_ms:
            self.broker_latency.observe_many(np.maximum(now - np.asarray(result.record_times_ms) / 1000.0, 0.0))
        self.last_batch_unix.set(now)

    def set_model_version(self, version: str, device: str | None = None) -> None:
        self.model_info.info({"version": version, **({"device": device} if device else {})})

    def set_lag(self, lags: Iterable[tuple[str, int, int]]) -> None:
        for topic, partition, lag in lags:
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def exposition(self) -> bytes:
        """The Prometheus text format of this registry (for web views)."""
        return generate_latest(self.registry)


def serve_metrics(metrics: StreamMetrics, host: str, port: int) -> Any:
    """Start the HTTP exporter on host:port (port 0 picks a free one); returns (server, thread)."""
    return start_http_server(port, addr=host, registry=metrics.registry)
