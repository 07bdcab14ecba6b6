"""Soak: one engine worker fed at a steady rate for a long time; its RSS must stay flat.

The traffic repeats the simulated frame in laps, each lap shifted later in event time and with its own
transaction ids, so every lap is new traffic to the streamer (nothing is late, nothing is a replay).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.monitor import rss_slope_mib_per_min
from bench.streams import EngineProcess, ScoreCollector, publish_frame
from fraudstream.settings import Settings

WARMUP_S = 45.0  # imports, first model calls, allocator growth to its working set: not part of the slope
LEAK_BYTES_PER_EVENT = 64  # the smallest per-event leak the bound is meant to catch


def lap(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The frame moved k laps later in event time, with transaction ids unique to the lap."""
    if k == 0:
        return frame
    span = frame["timestamp"].max() - frame["timestamp"].min() + pd.Timedelta(days=1)
    out = frame.copy()
    out["timestamp"] = out["timestamp"] + k * span
    out["transaction_id"] = out["transaction_id"].astype(str) + f"-l{k}"
    return out


def in_the_past(frame: pd.DataFrame, laps: int, now: pd.Timestamp) -> pd.DataFrame:
    """The frame moved earlier, if need be, so that its last lap still ends a day before `now`: events from the
    future are dead-lettered (max_future_skew_s), and a long soak of a short frame would get there."""
    span = frame["timestamp"].max() - frame["timestamp"].min() + pd.Timedelta(days=1)
    overshoot = frame["timestamp"].max() + (laps - 1) * span - (now - pd.Timedelta(days=1))
    if overshoot <= pd.Timedelta(0):
        return frame
    out = frame.copy()
    out["timestamp"] = out["timestamp"] - overshoot
    return out


def slope_bound_mib_per_min(rate: float) -> float:
    """A leak of LEAK_BYTES_PER_EVENT at `rate` events/s, in MiB per minute, but never below 1 MiB/min (the
    allocator's own noise over a few minutes)."""
    return max(1.0, rate * 60 * LEAK_BYTES_PER_EVENT / 2**20)


def run_soak(settings: Settings, frame: pd.DataFrame, engine: str, rate: float, seconds: float,
             workdir: Path, warmup_s: float = WARMUP_S) -> dict[str, Any]:
    """Publish at `rate` for `seconds` while one worker runs; RSS samples, slope after warm-up, bound.

    The warm-up should also cover the time the users' 30-day windows take to fill with the lapped traffic."""
    collector = ScoreCollector(settings).start()
    worker = EngineProcess(settings, engine, workdir / f"soak-{engine}.log").start()
    per_lap = len(frame)
    total = int(rate * seconds)
    frame = in_the_past(frame, -(-total // per_lap), pd.Timestamp.now(tz="UTC"))
    published = [0]

    def feed() -> None:
        k = 0
        while published[0] < total:
            part = lap(frame, k).iloc[: total - published[0]]
            publish_frame(settings, part, rate)
            published[0] += len(part)
            k += 1

    began = time.monotonic()
    publisher = threading.Thread(target=feed, name="soak-publisher", daemon=True)
    publisher.start()
    try:
        publisher.join(timeout=seconds * 3 + 120)
        published_by = time.monotonic()
        collector.wait_for(total, worker)
        drain_s = time.monotonic() - published_by
    finally:
        summary = worker.stop()
        collector.stop()
    assert worker.monitor is not None
    times, _, rss = worker.monitor.window(began + warmup_s, time.monotonic())
    times, rss = [t for t, r in zip(times, rss, strict=True) if r > 0], [r for r in rss if r > 0]  # 0: exited
    slope = rss_slope_mib_per_min(times, rss)
    bound = slope_bound_mib_per_min(rate)
    return {
        "engine": engine, "rate": round(rate, 1), "seconds": seconds, "warmup_s": warmup_s, "events": total,
        "laps": -(-total // per_lap),
        "scored": len(collector.times_ms), "duplicates": collector.duplicates,
        # how long the last scores took to come after the last publish: seconds, not minutes, if the worker kept up
        "drain_after_publish_s": round(drain_s, 1), "engine_summary": summary,
        "rss_start_mib": round(rss[0] / 2**20, 1) if rss else None,
        "rss_end_mib": round(rss[-1] / 2**20, 1) if rss else None,
        "rss_range_after_warmup_mib": round((max(rss) - min(rss)) / 2**20, 1) if rss else None,
        "peak_rss_mib": worker.monitor.peak_rss_mib, "rss_slope_mib_per_min": round(slope, 3),
        # a leak grows: RSS given back after the warm-up (a negative slope) is not one
        "slope_bound_mib_per_min": round(bound, 3), "flat": slope <= bound,
    }
