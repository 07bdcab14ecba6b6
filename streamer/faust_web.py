"""Views on faust's web server: GET /metrics, GET /health, GET /users/{user_id}/state.

The payloads are built by plain functions (unit-tested); the views only run them off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from fraudstream.errors import FraudstreamError
from state.store import FeatureStore
from streamer.faust_batches import EngineStatus
from streamer.metrics import StreamMetrics
from streamer.scoring import ModelHolder

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp refuses a charset here; the text is ASCII
#: /health and /users/... never wait longer than this for Redis.
REDIS_CHECK_TIMEOUT_S = 2.0


def redis_ping(store: FeatureStore) -> str | None:
    """None when the store's Redis answers a PING, else the reason (blocking: run it in a thread)."""
    client = getattr(store, "client", None)
    if client is None:
        return None  # an in-memory store is always reachable
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure of the client means "unreachable", reported verbatim
        return f"{type(exc).__name__}: {exc}"
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_payload(
    status: EngineStatus,
    holder: ModelHolder | None,
    assigned: Iterable[tuple[str, int]],
    redis_error: str | None,
    now_mono: float,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 503 when no model is loaded or Redis is unreachable, else 200."""
    model = holder.model if holder is not None else None
    problems = []
    if model is None:
        problems.append("no model loaded")
    if redis_error is not None:
        problems.append(f"redis unreachable ({redis_error})")
    retrying = status.retrying_since_mono
    body: dict[str, Any] = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "engine": "faust",
        "model_version": model.version if model is not None else None,
        "model_device": str(getattr(model, "device", "CPU")) if model is not None else None,
        "model_reloads": holder.reloads if holder is not None else 0,
        "model_reload_error": holder.last_error if holder is not None else None,
        "assigned_partitions": sorted(f"{topic}[{partition}]" for topic, partition in assigned),
        "last_batch_at": _iso(status.last_batch_at),
        "batches": status.batches,
        "events": status.events,
        "batch_in_flight": status.in_flight,
        "retrying_for_s": round(now_mono - retrying, 3) if retrying is not None else None,
        "uptime_s": round(now_mono - status.started_mono, 3),
    }
    return (200 if not problems else 503), body


def user_state_payload(store: FeatureStore, user_id: str, hashed: bool) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of one user's feature state; 404 when the store has none. Blocking."""
    try:
        state = store.user_state(user_id)
    except FraudstreamError as exc:
        return 503, {"error": f"state store unavailable: {exc}"}
    if state is None:
        return 404, {"error": f"no state for user {user_id}", "user_id": user_id}
    data = dataclasses.asdict(state) if dataclasses.is_dataclass(state) else dict(vars(state))
    return 200, {"user_id": user_id, "user_id_hashed_in_store": hashed, "state": data}


async def in_thread(fun: Callable[[], Any], timeout_s: float, default: Any) -> Any:
    """Run blocking work on the default executor (not the batch executor); `default` on timeout."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, fun), timeout_s)
    except TimeoutError:
        return default


def install_views(
    app: Any,
    *,
    status: EngineStatus,
    holder: ModelHolder,
    store: FeatureStore,
    metrics: StreamMetrics,
    monotonic: Callable[[], float],
    hashed_user_ids: bool,
) -> None:
    """Register the three views on a faust.App."""
    from faust import web

    def assigned() -> set[tuple[str, int]]:
        try:
            return {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        except Exception:  # noqa: BLE001 - consumer not started yet (or stopping): nothing assigned
            return set()

    async def metrics_view(self: web.View, request: web.Request) -> web.Response:
        return self.bytes(metrics.exposition(), content_type=PROMETHEUS_CONTENT_TYPE)

    async def health_view(self: web.View, request: web.Request) -> web.Response:
        redis_error = await in_thread(lambda: redis_ping(store), REDIS_CHECK_TIMEOUT_S, "PING timed out")
        code, body = health_payload(status, holder, assigned(), redis_error, monotonic())
        return self.json(body, status=code)

    async def user_state_view(self: web.View, request: web.Request, user_id: str) -> web.Response:
        timeout = (503, {"error": "state store did not answer in time"})
        code, body = await in_thread(
            lambda: user_state_payload(store, user_id, hashed_user_ids), REDIS_CHECK_TIMEOUT_S, timeout
        )
        return self.json(body, status=code)

    app.page("/metrics")(metrics_view)
    app.page("/health")(health_view)
    app.page("/users/{user_id}/state")(user_state_view)
