"""Pure parts of the bench: process sampling, RSS slope, rates, percentiles, the soak laps, the report's goals."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from bench.e2e import percentiles, sustained_rate
from bench.monitor import ProcessMonitor, read_cpu_rss, rss_slope_mib_per_min
from bench.report import goals, markdown
from bench.soak import in_the_past, lap, slope_bound_mib_per_min


def test_own_process_is_sampled_and_a_missing_one_is_none() -> None:
    cpu, rss = read_cpu_rss(os.getpid()) or (0.0, 0)
    assert cpu > 0 and rss > 10 * 2**20
    assert read_cpu_rss(2**22 + 12345) is None
    monitor = ProcessMonitor(os.getpid(), every_s=0.01).start()
    deadline = time.monotonic() + 10.0
    while len(monitor.rss) < 2 and time.monotonic() < deadline:  # a loaded machine may delay the sampler
        sum(i * i for i in range(100_000))
    monitor.stop()
    assert len(monitor.rss) >= 2 and monitor.peak_rss_mib is not None


def test_rss_slope_finds_a_leak_and_ignores_noise() -> None:
    t = list(np.arange(0, 300, 1.0))  # five minutes
    rng = np.random.default_rng(0)
    flat = [int(500 * 2**20 + rng.normal(0, 2**20)) for _ in t]
    leaking = [int(500 * 2**20 + s * 2**20 * 3 / 60) for s in t]  # 3 MiB per minute
    assert abs(rss_slope_mib_per_min(t, flat)) < 0.5
    assert abs(rss_slope_mib_per_min(t, leaking) - 3.0) < 1e-6
    assert slope_bound_mib_per_min(1000) > slope_bound_mib_per_min(10) == 1.0


def test_sustained_rate_and_percentiles() -> None:
    times = [int(i * 2) for i in range(1000)]  # one score every 2 ms
    assert abs((sustained_rate(times) or 0) - 500.0) < 1.0
    assert sustained_rate([1, 2]) is None
    p = percentiles([float(v) for v in range(1, 101)])
    assert p["p50_ms"] == 50.5 and p["p99_ms"] == 99.0 and p["max_ms"] == 100.0
    assert percentiles([])["p99_ms"] is None


def test_soak_laps_move_later_with_new_ids() -> None:
    frame = pd.DataFrame({"transaction_id": ["a", "b"],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-03"], utc=True)})
    second = lap(frame, 2)
    assert list(second["transaction_id"]) == ["a-l2", "b-l2"]
    assert second["timestamp"].min() > frame["timestamp"].max()
    assert lap(frame, 0) is frame


def _run(engine: str, mode: str, **values: object) -> dict[str, object]:
    base: dict[str, object] = {"engine": engine, "mode": mode, "cpu_percent": 50.0, "peak_rss_mib": 700.0,
                               "duplicates": 0}
    return base | values


def test_goals_flag_what_is_met_and_markdown_renders() -> None:
    redis = {"users": 10.0, "bytes_per_user_key_mean": 300.0, "bytes_per_user_key_p95": 400.0,
             "namespace_bytes_per_user": 900.0, "namespace_bytes_by_kind": {"user state": 3000}}
    e2e = {"events": 100, "publisher_max_per_s": 1000.0,
           "passthrough_plain": {"records_per_s": 1000.0, "cpu_percent": 10.0, "peak_rss_mib": 40.0},
           "passthrough_transactional": {"records_per_s": 500.0, "cpu_percent": 10.0, "peak_rss_mib": 40.0},
           "runs": [_run("kafka", "max", events_per_s=600.0, ratio_to_passthrough=0.6,
                         ratio_to_transactional_passthrough=1.2, redis=redis),
                    _run("kafka", "50pct", target_rate=300.0, published_per_s=300.0, p50_ms=20.0, p95_ms=40.0,
                         p99_ms=80.0)]}
    met = {g["goal"]: g["met"] for g in goals(e2e)}
    assert met["kafka: end-to-end / passthrough"] is True
    assert met["kafka: p99 latency at 50 % of max (ms)"] is False
    assert met["kafka: Redis bytes per user (user key, mean)"] is True
    machine = {"command": "python -m bench", "cpu_model": "x", "cores": 2, "memory_gib": 1.0,
               "load_average_at_start": [1.0], "versions": {"python": "3.11"}}
    text = markdown({"machine": machine, "started_at": "now", "took_s": 1.0, "e2e": e2e})
    assert "| kafka | 50pct |" in text and "NO" in text and "passthrough plain" in text


def test_a_failed_soak_is_reported_beside_a_finished_one() -> None:
    machine = {"command": "python -m bench", "cpu_model": "x", "cores": 2, "memory_gib": 1.0,
               "load_average_at_start": [1.0], "versions": {"python": "3.11"}}
    failed = {"engine": "kafka", "rate": 500.0, "seconds": 60.0, "error": "no new score for 90 s\nlog tail"}
    text = markdown({"machine": machine, "started_at": "now", "took_s": 1.0, "soak": failed})
    assert "FAILED: no new score for 90 s" in text and "log tail" not in text
    done = {"engine": "kafka", "rate": 500.0, "seconds": 60.0, "events": 30000, "scored": 30000, "duplicates": 0,
            "drain_after_publish_s": 1.5, "rss_start_mib": 300.0, "rss_end_mib": 301.0,
            "rss_slope_mib_per_min": 0.2, "slope_bound_mib_per_min": 1.8, "flat": True}
    text = markdown({"machine": machine, "started_at": "now", "took_s": 1.0, "soak": done})
    assert "1.5 s after the last publish" in text and ": flat." in text


def test_soak_laps_never_reach_the_future() -> None:
    frame = pd.DataFrame({"transaction_id": ["a", "b"],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-03"], utc=True)})
    now = pd.Timestamp("2024-03-01", tz="UTC")
    assert in_the_past(frame, 5, now) is frame  # five 3-day laps end on 2024-01-15: nothing to move
    moved = in_the_past(frame, 40, now)  # forty would end in April
    last = lap(moved, 39)
    assert last["timestamp"].max() == now - pd.Timedelta(days=1)
    assert (moved["timestamp"].diff().dropna() == frame["timestamp"].diff().dropna()).all()
