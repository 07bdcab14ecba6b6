"""End-to-end: the passthrough ceiling, then each engine as a subprocess on a backlog (max) and at paced rates
(the kafka engine twice: exactly once, then at least once, as `kafka (at least once)`), and with engine `quix` the
quix-streams reference pipeline (bench/quix_run.py) on the same backlog (max only).

Every run has its own topics, consumer group and Redis namespace (removed at the end); the transactions backlog
is published once and read by the passthrough and by both engines' max runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.monitor import ProcessMonitor
from bench.streams import REPO, EngineProcess, ScoreCollector, free_port, publish_frame, settings_env
from fraudstream.errors import InfraError
from fraudstream.infra.topics import ensure_topics
from fraudstream.settings import Settings

WARMUP_EVENTS = 200
#: key name fragment -> what it holds (state/keys.py)
KEY_KINDS = {":u:": "user state", ":mf:": "merchant fraud", ":m:": "merchant tx", ":out": "output cache",
             ":off": "offsets", ":x:": "seen transactions"}


@dataclass
class E2EContext:
    base: Settings  # the stack, the registry with the bench model
    frame: pd.DataFrame  # simulated traffic in event-time order
    workdir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    used: list[Settings] = field(default_factory=list)

    def isolated(self, tag: str, transactions: str | None = None, guarantee: str | None = None) -> Settings:
        name = f"bench-{self.run_id}-{tag}"
        topics = {k: f"{name}.{k}" for k in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
        if transactions is not None:
            topics["transactions"] = transactions
        settings = self.base.with_overrides(
            topics=topics,
            redis={"namespace": f"b{self.run_id}{tag}"[:32].replace("%", "")},
            streamer={"consumer_group": name, "transactional_id": name, "web_port": free_port(), "metrics_port": 0,
                      **({"processing_guarantee": guarantee} if guarantee else {})},
        )
        ensure_topics(settings)
        self.used.append(settings)
        return settings

    def cleanup(self) -> None:
        from backtest.isolation import drop_kafka_names, drop_redis_namespace

        for settings in self.used:
            drop_redis_namespace(settings)
            group = settings.streamer.consumer_group
            drop_kafka_names(settings, [group, f"{group}.labels", f"{group}-pt"])


def percentiles(values_ms: list[float]) -> dict[str, Any]:
    if not values_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.asarray(values_ms, dtype=np.float64)
    return {f"p{q}_ms": round(float(np.percentile(arr, q)), 1) for q in (50, 95, 99)} | {
        "max_ms": round(float(arr.max()), 1)
    }


def sustained_rate(times_ms: list[int]) -> float | None:
    """Scores per second over the middle 90 % of the run (start-up and the tail left out)."""
    if len(times_ms) < 20:
        return None
    t = np.sort(np.asarray(times_ms, dtype=np.float64))
    lo, hi = int(0.05 * len(t)), int(0.95 * len(t)) - 1
    span = (t[hi] - t[lo]) / 1000.0
    return round((hi - lo) / span, 1) if span > 0 else None


def redis_memory(settings: Settings) -> dict[str, Any]:
    """Bytes per user key (mean, p95) from the store's own report, and the whole namespace per user."""
    from state.redis_client import redis_client
    from streamer.runtime import build_store

    store = build_store(settings)
    report = store.memory_report()
    client = redis_client(settings)
    try:
        keys = list(client.scan_iter(match=f"{settings.redis.namespace}:*", count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        by_kind: dict[str, int] = {}
        count: dict[str, int] = {}
        for key, size in zip(keys, pipe.execute(), strict=True):
            kind = KEY_KINDS.get(next((k for k in KEY_KINDS if k in key.decode()), "other"), "other")
            by_kind[kind] = by_kind.get(kind, 0) + int(size or 0)
            count[kind] = count.get(kind, 0) + 1
        total = sum(by_kind.values())
    finally:
        client.close()
    users = report.get("users_measured", 0.0)
    return {
        "users": users,
        "bytes_per_user_key_mean": round(report.get("bytes_per_user_mean", 0.0), 1),
        "bytes_per_user_key_p95": round(report.get("bytes_per_user_p95", 0.0), 1),
        "namespace_bytes_per_user": round(total / users, 1) if users else 0.0,
        "namespace_bytes_by_kind": by_kind,
        # the duplicate check's memory: one key per transaction applied, for the state TTL (state/keys.py)
        "seen_bytes_per_transaction": round(by_kind.get("seen transactions", 0) / count["seen transactions"], 1)
        if count.get("seen transactions") else None,
    }


def _monotonic_of(wall_ms: float) -> float:
    return time.monotonic() - (time.time() - wall_ms / 1000.0)


def run_passthrough(ctx: E2EContext, source: str, count: int, mode: str, tag: str = "pt") -> dict[str, Any]:
    settings = ctx.isolated(f"{tag}{mode[0]}")
    group = f"{settings.streamer.consumer_group}-pt"
    command = [sys.executable, "-m", "bench.passthrough", source, settings.topics.scores, group,
               "--expect", str(count), "--mode", mode]
    process = subprocess.Popen(command, cwd=REPO, env=settings_env(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    monitor = ProcessMonitor(process.pid).start()
    out, err = process.communicate(timeout=900)
    monitor.stop()
    if process.returncode != 0:
        raise InfraError(f"the passthrough ({mode}) failed: {err.strip()[-1500:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss_mib": monitor.peak_rss_mib}


class Neighbours:
    """CPU of what shares the machine with the worker: the embedded broker and this process (publisher, reader)."""

    def __init__(self, settings: Settings) -> None:
        from fraudstream.infra.kafka_embedded import running_pid

        broker = running_pid(settings) if settings.uses_embedded_kafka else None
        self.broker = ProcessMonitor(broker).start() if broker is not None else None
        self.bench = ProcessMonitor(os.getpid()).start()

    def stop(self, start: float, end: float) -> dict[str, Any]:
        for monitor in (self.broker, self.bench):
            if monitor is not None:
                monitor.stop()
        return {"broker_cpu_percent": self.broker.cpu_percent(start, end) if self.broker is not None else None,
                "loadgen_cpu_percent": self.bench.cpu_percent(start, end)}


def _name(engine: str, guarantee: str | None) -> str:
    return engine if guarantee is None else f"{engine} ({guarantee.replace('_', ' ')})"


def run_max(ctx: E2EContext, engine: str, source: str, count: int, guarantee: str | None = None) -> dict[str, Any]:
    """The engine drains a backlog of `count` events: sustained events/s, CPU, peak RSS, Redis per user."""
    settings = ctx.isolated(f"{engine[0]}{'a' if guarantee else ''}max", transactions=source, guarantee=guarantee)
    neighbours = Neighbours(settings)
    collector = ScoreCollector(settings).start()
    worker = EngineProcess(settings, engine, ctx.workdir / f"{engine}-max.log").start()
    started = time.monotonic()
    try:
        collector.wait_for(count, worker)
    finally:
        summary = worker.stop()
        collector.stop()
    times = list(collector.times_ms.values())
    assert worker.monitor is not None
    first, last = _monotonic_of(min(times)), _monotonic_of(max(times))
    return {
        "engine": _name(engine, guarantee), "mode": "max", "events": len(times), "duplicates": collector.duplicates,
        "events_per_s": sustained_rate(times), "wall_incl_startup_s": round(time.monotonic() - started, 1),
        "cpu_percent": worker.monitor.cpu_percent(first, last), "peak_rss_mib": worker.monitor.peak_rss_mib,
        **neighbours.stop(first, last), "redis": redis_memory(settings), "engine_summary": summary,
    }


def run_paced(ctx: E2EContext, engine: str, rate: float, seconds: float, label: str,
              guarantee: str | None = None) -> dict[str, Any]:
    """Worker up and warm, then `rate` events/s for `seconds`: publish-to-score latency percentiles."""
    settings = ctx.isolated(f"{engine[0]}{'a' if guarantee else ''}{label}", guarantee=guarantee)
    count = min(int(rate * seconds), len(ctx.frame) - WARMUP_EVENTS)
    neighbours = Neighbours(settings)
    collector = ScoreCollector(settings).start()
    worker = EngineProcess(settings, engine, ctx.workdir / f"{engine}-{label}.log").start()
    try:
        publish_frame(settings, ctx.frame.iloc[:WARMUP_EVENTS])
        collector.wait_for(WARMUP_EVENTS, worker, stall_s=180)
        began = time.monotonic()
        report, published = publish_frame(settings, ctx.frame.iloc[WARMUP_EVENTS : WARMUP_EVENTS + count], rate)
        collector.wait_for(WARMUP_EVENTS + count, worker)
        ended = time.monotonic()
    finally:
        summary = worker.stop()
        collector.stop()
    latencies = [collector.times_ms[t] - ms for t, ms in published.items()]
    assert worker.monitor is not None
    return {
        "engine": _name(engine, guarantee), "mode": label, "target_rate": round(rate, 1), "events": count,
        "published_per_s": round(report.per_second, 1), "duplicates": collector.duplicates,
        **percentiles(latencies), "cpu_percent": worker.monitor.cpu_percent(began, ended),
        "peak_rss_mib": worker.monitor.peak_rss_mib, **neighbours.stop(began, ended), "engine_summary": summary,
    }


def run_e2e(ctx: E2EContext, engines: list[str], events: int, fractions: list[float], paced_s: float,
            say: Any) -> dict[str, Any]:
    backlog = ctx.isolated("backlog")
    source = backlog.topics.transactions
    report, _ = publish_frame(backlog, ctx.frame.iloc[:events])
    say(f"backlog: {events:,} events published at {report.per_second:,.0f}/s (publisher maximum)")
    out: dict[str, Any] = {"events": events, "publisher_max_per_s": round(report.per_second, 1), "runs": []}
    # a broker started minutes ago is still compiling its hot paths (JIT): one unmeasured pass of each kind first
    for mode in ("plain", "transactional"):
        run_passthrough(ctx, source, events, mode, tag="warm")
    for mode in ("plain", "transactional"):
        out[f"passthrough_{mode}"] = result = run_passthrough(ctx, source, events, mode)
        say(f"passthrough {mode}: {result['records_per_s']:,.0f} records/s")
    ceiling = out["passthrough_plain"]["records_per_s"]
    transactional = out["passthrough_transactional"]["records_per_s"]
    variants = [(e, g) for e in engines if e != "quix"
                for g in ((None, "at_least_once") if e == "kafka" else (None,))]
    for engine, guarantee in variants:
        name = _name(engine, guarantee)
        best = run_max(ctx, engine, source, events, guarantee)
        best["ratio_to_passthrough"] = round(best["events_per_s"] / ceiling, 3) if ceiling else None
        best["ratio_to_transactional_passthrough"] = round(best["events_per_s"] / transactional, 3)
        out["runs"].append(best)
        say(f"{name} max: {best['events_per_s']:,.0f} events/s ({best['ratio_to_passthrough']:.1%} of passthrough)")
        for fraction in fractions:
            run = run_paced(ctx, engine, fraction * best["events_per_s"], paced_s, f"{round(fraction * 100)}pct",
                            guarantee)
            out["runs"].append(run)
            say(f"{name} at {fraction:.0%}: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms")
    if "quix" in engines:
        from bench.quix_run import run_quix_max

        quix = run_quix_max(ctx, source, events)
        quix["ratio_to_passthrough"] = round(quix["events_per_s"] / ceiling, 3) if ceiling else None
        quix["ratio_to_transactional_passthrough"] = round(quix["events_per_s"] / transactional, 3)
        out["runs"].append(quix)
        say(f"{quix['engine']} max: {quix['events_per_s']:,.0f} events/s "
            f"({quix['ratio_to_passthrough']:.1%} of passthrough)")
        out["engine_over_quix"] = over = engine_over_reference(out["runs"])
        for name, ratio in over.items():
            say(f"{name} engine / quix reference: {ratio:.2f}x")
    return out


def engine_over_reference(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each engine's max rate over the quix-streams reference's, by engine name."""
    maxima = {r["engine"]: r["events_per_s"] for r in runs if r["mode"] == "max" and r.get("events_per_s")}
    reference = maxima.pop("quix-streams reference", None)
    return {name: round(rate / reference, 2) for name, rate in maxima.items()} if reference else {}
