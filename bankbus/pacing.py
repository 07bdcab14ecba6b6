"""When to send each message: as fast as possible, at a fixed rate, or at the original pacing times a speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fraudstream.clock import Clock, SystemClock
from fraudstream.errors import InputError


@dataclass(frozen=True)
class Pacing:
    mode: Literal["max", "rate", "speed"] = "max"
    value: float = 0.0  # messages per second (rate) or speed factor (speed)

    @classmethod
    def from_options(cls, *, rate: float | None, speed: float | None, fastest: bool) -> Pacing:
        chosen = [name for name, given in (("--rate", rate is not None), ("--speed", speed is not None),
                                           ("--max", fastest)) if given]
        if len(chosen) > 1:
            raise InputError(f"give only one of {', '.join(chosen)}")
        for name, value in (("--rate", rate), ("--speed", speed)):
            if value is not None and not (value > 0 and np.isfinite(value)):
                raise InputError(f"{name} must be a positive number, not {value}")
        if rate is not None:
            return cls("rate", rate)
        if speed is not None:
            return cls("speed", speed)
        return cls("max")

    def offsets(self, event_ns: np.ndarray) -> np.ndarray | None:
        """Seconds after the start at which each message is due (None: all due now).

        event_ns: event times (ns) in send order; for `speed`, gaps between them are divided by the factor.
        """
        if self.mode == "max" or len(event_ns) == 0:
            return None
        if self.mode == "rate":
            return np.arange(len(event_ns), dtype=np.float64) / self.value
        relative = (event_ns - event_ns[0]).astype(np.float64) / 1e9
        due: np.ndarray = np.maximum.accumulate(relative) / self.value  # never earlier than a message before
        return due


class Pacer:
    """Tells how many messages are due now, sleeping (through an injected sleep) when none is."""

    def __init__(
        self, offsets: np.ndarray | None, clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep, max_sleep_s: float = 0.5,
    ) -> None:
        self.offsets, self.clock, self.sleep, self.max_sleep_s = offsets, clock or SystemClock(), sleep, max_sleep_s
        self.start = self.clock.monotonic()

    def due(self, sent: int, limit: int) -> int:
        """Index one past the last message that may be sent now (at most `limit`); waits if none is due."""
        if self.offsets is None:
            return limit
        while True:
            elapsed = self.clock.monotonic() - self.start
            due = int(np.searchsorted(self.offsets, elapsed, side="right"))
            if due > sent:
                return min(due, limit)
            self.sleep(min(float(self.offsets[sent]) - elapsed, self.max_sleep_s))
