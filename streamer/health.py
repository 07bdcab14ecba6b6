"""Liveness and readiness of a kafka-engine worker, served beside /metrics on the metrics port.

- `GET /health` (live): 200 while the worker's loop keeps polling Kafka (it polls during Redis outages too, with its
  partitions paused); 503 once it has not polled for `stall_s`, so a supervisor restarts a worker that is stuck.
  Before the loop starts (the model loading, the kernels compiling) the worker counts as live.
- `GET /ready`: 200 only when all hold: transactions partitions are assigned to this worker, Redis answers PING,
  the Kafka brokers answer a metadata request, and a model is loaded; else 503. The body is JSON with each check
  and why it fails. Each probe of Redis and Kafka is cached for `ttl_s` and bounded by `timeout_s`, so a probe
  storm costs at most one PING and one metadata request per `ttl_s`, on the HTTP thread, never on the hot path.
- `GET /metrics`: the Prometheus text format of the worker's registry, as before.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fraudstream.settings import Settings
from streamer.metrics import StreamMetrics

log = logging.getLogger(__name__)

#: A worker whose loop has not polled Kafka for this long is not live (a commit gives up after recovery_timeout_s).
STALL_S = 180.0
#: How long one Redis or Kafka probe result is reused.
PROBE_TTL_S = 1.0
#: The most one probe may block the HTTP thread.
PROBE_TIMEOUT_S = 2.0

#: A probe returns None when its dependency answers, else the reason in a few words.
Probe = Callable[[], str | None]


@dataclass
class _Cached:
    probe: Probe
    ttl_s: float
    clock: Callable[[], float]
    _at: float = float("-inf")
    _value: str | None = "not probed yet"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> str | None:
        with self._lock:  # one probe at a time; concurrent requests share its answer
            if self.clock() - self._at >= self.ttl_s:
                try:
                    self._value = self.probe()
                except Exception as exc:  # noqa: BLE001 - a probe that fails in any way means "not answering"
                    self._value = f"{type(exc).__name__}: {exc}"
                self._at = self.clock()
            return self._value


class WorkerHealth:
    """What /health and /ready answer. The engine and the model are attached once they exist."""

    def __init__(
        self,
        redis_probe: Probe,
        kafka_probe: Probe,
        *,
        stall_s: float = STALL_S,
        ttl_s: float = PROBE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = _Cached(redis_probe, ttl_s, clock)
        self._kafka = _Cached(kafka_probe, ttl_s, clock)
        self.stall_s = stall_s
        self._clock = clock
        self.assigned: Callable[[], int] = lambda: 0  # transactions partitions assigned to this worker
        self.last_poll: Callable[[], float | None] = lambda: None  # monotonic time of the loop's last poll
        self.model_version: Callable[[], str | None] = lambda: None

    def live(self) -> tuple[bool, dict[str, Any]]:
        last = self.last_poll()
        if last is None:
            return True, {"live": True, "loop": "starting"}
        silent = self._clock() - last
        ok = silent < self.stall_s
        return ok, {"live": ok, "last_poll_s_ago": round(silent, 1), "stall_s": self.stall_s}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        assigned = self.assigned()
        version = self.model_version()
        redis_down, kafka_down = self._redis(), self._kafka()
        checks = {
            "partitions": _check(assigned > 0, f"{assigned} assigned", "no transactions partition assigned"),
            "redis": _check(redis_down is None, "answering", redis_down),
            "kafka": _check(kafka_down is None, "answering", kafka_down),
            "model": _check(version is not None, version, "no model loaded"),
        }
        ok = all(c["ok"] for c in checks.values())
        return ok, {"ready": ok, "checks": checks}


def _check(ok: bool, good: str | None, bad: str | None) -> dict[str, Any]:
    return {"ok": ok, "detail": good if ok else bad}


def worker_health(settings: Settings) -> WorkerHealth:
    """Probes of the settings' Redis (one client, kept) and Kafka (one admin client, kept)."""
    from confluent_kafka.admin import AdminClient

    from fraudstream.kafka_config import client_config
    from state.redis_client import redis_client

    timeout = min(PROBE_TIMEOUT_S, settings.redis.socket_timeout_s)
    redis = redis_client(settings.with_overrides(redis={"socket_timeout_s": timeout}))
    admin = AdminClient(client_config(settings))
    topic = settings.topics.transactions

    def redis_probe() -> str | None:
        redis.ping()
        return None

    def kafka_probe() -> str | None:
        metadata = admin.list_topics(topic=topic, timeout=PROBE_TIMEOUT_S)
        if not metadata.brokers:
            return "no broker in the metadata"
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            return f"topic {topic} unavailable: {info.error if info is not None else 'missing'}"
        return None

    return WorkerHealth(redis_probe, kafka_probe)


def _handler(metrics: StreamMetrics, health: WorkerHealth | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path in ("/health", "/ready") and health is not None:
                ok, body = health.live() if path == "/health" else health.ready()
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"error": "not found: try /metrics, /health or /ready"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s", format % args)

    return Handler


class ProbeServer:
    """/metrics, /health and /ready on host:port (port 0 picks a free one), on daemon threads."""

    def __init__(self, metrics: StreamMetrics, host: str, port: int, health: WorkerHealth | None = None) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(metrics, health))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="probe-http", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
