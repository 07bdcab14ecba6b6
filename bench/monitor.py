"""CPU time and resident memory of another process, sampled from /proc (Linux) in a background thread."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_cpu_rss(pid: int) -> tuple[float, int] | None:
    """(user+system CPU seconds, RSS bytes) of a live process; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    rss = int(fields[21]) * PAGE
    return cpu, rss


def rss_slope_mib_per_min(times_s: list[float], rss_bytes: list[int]) -> float:
    """Least-squares slope of RSS over time, MiB per minute."""
    if len(times_s) < 3:
        return 0.0
    t = np.asarray(times_s) / 60.0
    r = np.asarray(rss_bytes, dtype=np.float64) / 2**20
    return float(np.polyfit(t - t[0], r, 1)[0])


@dataclass
class ProcessMonitor:
    """Samples a pid every `every_s` until stopped or the process is gone."""

    pid: int
    every_s: float = 0.25
    times: list[float] = field(default_factory=list)  # monotonic seconds
    cpu_s: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessMonitor:
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = read_cpu_rss(self.pid)
            if sample is None:
                return
            self.times.append(time.monotonic())
            self.cpu_s.append(sample[0])
            self.rss.append(sample[1])
            self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def window(self, start: float, end: float) -> tuple[list[float], list[float], list[int]]:
        keep = [i for i, t in enumerate(self.times) if start <= t <= end]
        return [self.times[i] for i in keep], [self.cpu_s[i] for i in keep], [self.rss[i] for i in keep]

    def cpu_percent(self, start: float, end: float) -> float | None:
        """Mean CPU use between two monotonic times (100 = one core busy)."""
        times, cpu, _ = self.window(start, end)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return round(100.0 * (cpu[-1] - cpu[0]) / (times[-1] - times[0]), 1)

    @property
    def peak_rss_mib(self) -> float | None:
        return round(max(self.rss) / 2**20, 1) if self.rss else None
