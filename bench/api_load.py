"""The scoring API under load: `fraudstream api serve` (uvicorn, one process) as a subprocess over a state streamed
into Redis, driven by an open-loop load generator at a fixed rate (bench/http_load.py).

Open loop: request i is due at start + i / rate whatever happened to the ones before, and its latency is counted
from that due time to the end of its response, so a stall delays every request behind it and shows in the tail (no
coordinated omission). The first `warmup_s` seconds are left out. The generator runs in the bench process, on the
same cores as the server, Redis and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.monitor import ProcessMonitor
from bench.streams import REPO, free_port, settings_env
from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER, Transaction
from fraudstream.errors import InfraError
from fraudstream.settings import Settings

GOAL_P99_MS = 10.0
STATE_BATCH = 2000


def stream_state(settings: Settings, txns: list[Transaction]) -> int:
    """Apply `txns` to the settings' Redis namespace through the stream's own core (in process); returns the
    number of transactions applied."""
    from fraudstream.clock import SystemClock
    from streamer.core import RawRecord, StreamProcessor
    from streamer.runtime import build_holder, build_store

    store = build_store(settings)
    holder = build_holder(settings)
    try:
        processor = StreamProcessor(settings, store, holder, SystemClock())
        parts = settings.topics.partitions
        offsets = dict.fromkeys(range(parts), 0)
        headers: list[tuple[str, bytes | None]] = [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode()),
                                                   ("record-type", b"transaction")]  # fmt: skip
        for lo in range(0, len(txns), STATE_BATCH):
            records = []
            for txn in txns[lo : lo + STATE_BATCH]:
                p = zlib.crc32(txn.user_id.encode()) % parts
                records.append(RawRecord(settings.topics.transactions, p, offsets[p], txn.user_id.encode(),
                                         txn.model_dump_json().encode(), headers))  # fmt: skip
                offsets[p] += 1
            processor.process(records)
    finally:
        holder.stop()
    return len(txns)


def request_bodies(txns: list[Transaction], count: int, seed: int = 5) -> list[bytes]:
    """New events (not late: after each user's last) for up to `count` users of the streamed history."""
    rng = np.random.default_rng(seed)
    last = max(t.timestamp for t in txns)
    latest = {t.user_id: t for t in txns}
    users = list(latest)[-count:]
    out = []
    for k, user in enumerate(users):
        amount = float(np.round(rng.lognormal(3.5, 1.2), 2))
        txn = latest[user].model_copy(update={"transaction_id": f"api-bench-{k}", "amount": min(amount, 50_000.0),
                                              "timestamp": last + timedelta(seconds=60 + k)})  # fmt: skip
        out.append(txn.model_dump_json().encode())
    return out


class ApiServer:
    """`fraudstream api serve` as a subprocess with its log file, sampled by a ProcessMonitor."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{settings.api.port}"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "fraudstream", "api", "serve"], cwd=REPO,
                                            env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT)
        self.monitor = ProcessMonitor(self.process.pid).start()
        self.ready: dict[str, Any] = {}

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InfraError(f"the API server exited with {self.process.returncode}: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/ready", timeout=2) as response:
                    if response.status == 200:
                        self.ready = json.loads(response.read())  # the model version and scorer in use
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise InfraError(f"the API server was not ready within {timeout_s:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(no output)"

    def stop(self) -> None:
        self.monitor.stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def open_loop(url: str, key: str, bodies: list[bytes], rate: float, seconds: float) -> list[tuple[float, ...]]:
    """(due, sent, done, status) per request, by time.perf_counter; status -1 for a connection error. The lean
    generator of bench/http_load.py (pre-built requests, keep-alive connections), not aiohttp's client, which cost
    the server's cores twice as much per request."""
    from bench.http_load import open_loop as lean_open_loop

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return list(await lean_open_loop(url, headers, bodies, rate, seconds))


async def closed_loop(url: str, key: str, bodies: list[bytes], count: int, in_flight: int) -> tuple[float, int]:
    """`count` requests with `in_flight` at a time (each sent when one returns); returns the seconds taken and how
    many answers were alerts (each alert is explained, so the alert share sets much of a request's cost)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    todo = iter(range(count))
    alerts = 0
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            nonlocal alerts
            for i in todo:
                async with session.post(url, data=bodies[i % len(bodies)]) as response:
                    alerts += json.loads(await response.read()).get("decision") == "alert"

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - began, alerts


def server_cost(server: ApiServer, key: str, bodies: list[bytes], count: int = 1000) -> dict[str, Any]:
    """The server's own CPU per request (less sensitive to the machine's load than latency is): requests one at a
    time (each a batch of one) and 16 in flight (batched), and /v1/health (the HTTP stack alone)."""
    from bench.monitor import read_cpu_rss

    out: dict[str, Any] = {}
    for name, in_flight in (("alone", 1), ("16_in_flight", 16)):
        before = read_cpu_rss(server.process.pid)
        took, alerts = _run_loop(closed_loop(f"{server.url}/v1/score", key, bodies, count, in_flight))
        after = read_cpu_rss(server.process.pid)
        if before is None or after is None:
            continue
        out[name] = {"cpu_ms_per_request": round((after[0] - before[0]) / count * 1000, 3),
                     "requests_per_s": round(count / took, 1), "alert_share": round(alerts / count, 3)}  # fmt: skip
    return out


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the generator's process while it sends: this process holds the whole streamed
    history, and one full collection of it takes about 170 ms here and stalled the generator for 190 ms once, a tail the
    server had no part in."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _run_loop(coroutine: Any) -> Any:
    """On uvloop when it is installed (the generator's own cost per request is lower), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 3) if len(values) else None


def run_api_bench(ctx: Any, rate: float, seconds: float, say: Callable[[str], None], warmup_s: float = 3.0,
                  state_users: int = 1000) -> dict[str, Any]:  # fmt: skip
    """The whole run: state, server, key, load; the result row for bench.json."""
    from api.keys import KeyFile
    from features.offline import transactions_from_frame

    settings = ctx.isolated("api").with_overrides(
        api={"port": free_port(), "keys_file": str(Path(ctx.workdir) / "api-keys.json")}
    )
    txns = list(transactions_from_frame(ctx.frame))
    say(f"api: streaming {len(txns):,} events into the state (the stream's core, in process)")
    applied = stream_state(settings, txns)
    bodies = request_bodies(txns, state_users)
    key, _ = KeyFile(settings.api_keys_file).create("bench", "bench")
    server = ApiServer(settings, Path(ctx.workdir) / "api-server.log")
    try:
        server.wait_ready()
        say(f"api: {rate:,.0f} requests/s for {seconds + warmup_s:.0f} s (first {warmup_s:.0f} s warm-up)")
        load_before = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.monotonic()
        with collector_paused():
            results = _run_loop(open_loop(f"{server.url}/v1/score", key, bodies, rate, seconds + warmup_s))
        wall1 = time.monotonic()
        load_after = os.getloadavg()[0]
        loadgen_cpu = round(100.0 * (time.process_time() - cpu0) / (wall1 - wall0), 1)
        server_cpu = server.monitor.cpu_percent(wall0 + warmup_s, wall1)
        say("api: the server's CPU per request, closed loop (one at a time, then 16 in flight)")
        cost = server_cost(server, key, bodies)
        peak = server.monitor.peak_rss_mib
    finally:
        server.stop()
    arr = np.asarray(results, dtype=np.float64)
    start = arr[:, 0].min()
    kept = arr[arr[:, 0] >= start + warmup_s]
    ok = kept[kept[:, 3] == 200]
    latency = ok[:, 2] - ok[:, 0]
    service = ok[:, 2] - ok[:, 1]  # from the send; the difference (send lag) is the generator's own delay
    span = float(kept[:, 2].max() - kept[:, 0].min()) if len(kept) else 0.0
    p99 = _ms(latency, 99)
    return {
        "rate": rate, "seconds": seconds, "warmup_s": warmup_s, "requests": len(kept), "ok": len(ok),
        "statuses": {str(int(k)): v for k, v in Counter(kept[:, 3].tolist()).items()},
        "achieved_per_s": round(len(kept) / span, 1) if span else None,
        "p50_ms": _ms(latency, 50), "p90_ms": _ms(latency, 90), "p95_ms": _ms(latency, 95), "p99_ms": p99,
        "p999_ms": _ms(latency, 99.9),
        "max_ms": round(float(latency.max()) * 1000, 3) if len(latency) else None,
        "service_p50_ms": _ms(service, 50), "service_p99_ms": _ms(service, 99),
        "send_lag_p99_ms": _ms(ok[:, 1] - ok[:, 0], 99),
        "server_cpu_percent": server_cpu, "server_peak_rss_mib": peak, "loadgen_cpu_percent": loadgen_cpu,
        "state_events": applied, "request_users": len(bodies), "scorer": server.ready.get("scorer"),
        "model_version": server.ready.get("model_version"),
        "http": "uvicorn " + ("httptools" if importlib.util.find_spec("httptools") else "h11") + ", "
                + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio"),
        "server_cost": cost,
        "load_average_1m": [round(load_before, 2), round(load_after, 2)], "cores": os.cpu_count(),
        "goal_p99_ms": GOAL_P99_MS, "met": p99 is not None and p99 < GOAL_P99_MS and len(ok) == len(kept),
    }  # fmt: skip
