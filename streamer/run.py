"""Running the kafka engine as a process: topics, runtime, metrics exporter, signal handling, a final summary."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import numpy as np

from fraudstream.settings import Settings
from streamer.kafka_engine import KafkaEngine
from streamer.stats import EngineStats

log = logging.getLogger(__name__)


def summary(stats: EngineStats, elapsed_s: float) -> dict[str, Any]:
    """Counts, sustained records/s and broker-to-commit latency percentiles of a run."""
    latencies = stats.latencies_s.values()
    pct = (lambda q: round(float(np.percentile(latencies, q)) * 1000, 1)) if latencies.size else (lambda q: None)
    return {
        "records": stats.records,
        "events": stats.events,
        "alerts": stats.alerts,
        "dlq": stats.dlq,
        "late": stats.late,
        "replayed": stats.replayed,
        "batches": stats.batches,
        "transactions": stats.transactions,
        "redis_retries": stats.redis_retries,
        "kafka_retries": stats.kafka_retries,
        "elapsed_s": round(elapsed_s, 2),
        "records_per_s": round(stats.records / elapsed_s, 1) if elapsed_s > 0 else None,
        "latency_p50_ms": pct(50),
        "latency_p99_ms": pct(99),
    }


def run_kafka_engine(
    settings: Settings,
    *,
    max_events: int | None = None,
    idle_exit_s: float | None = None,
    instance_id: str | None = None,
    serve_metrics: bool = True,
) -> dict[str, Any]:
    """Run one worker until SIGTERM/SIGINT (finishing the batch in flight), idle_exit_s or max_events."""
    from fraudstream.infra.topics import ensure_topics
    from streamer.health import ProbeServer, worker_health
    from streamer.metrics import StreamMetrics
    from streamer.runtime import build_runtime

    ensure_topics(settings)
    metrics = StreamMetrics()
    health = worker_health(settings)
    server = None
    if serve_metrics:  # up before the model loads: live at once, ready once assigned with everything answering
        server = ProbeServer(metrics, settings.streamer.metrics_host, settings.streamer.metrics_port, health)
        log.info("metrics, /health and /ready on http://%s:%d", settings.streamer.metrics_host, server.port)
    try:
        runtime = build_runtime(settings, metrics=metrics)
    except BaseException:
        if server is not None:
            server.close()
        raise
    engine = KafkaEngine(settings, runtime.processor, runtime.metrics, instance_id=instance_id)
    health.model_version = lambda: runtime.holder.version
    health.assigned = engine.assigned_transactions_partitions
    health.last_poll = lambda: engine.last_poll_at
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: engine.stop())
    try:
        stats = engine.run(max_events=max_events, idle_exit_s=idle_exit_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runtime.close()
        if server is not None:
            server.close()
    busy = 0.0
    if stats.first_data_at is not None and stats.last_commit_at is not None:
        busy = stats.last_commit_at - stats.first_data_at
    return summary(stats, busy)
