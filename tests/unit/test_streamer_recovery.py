"""Bounded recovery (streamer/recovery.py): when a member counts as stuck, and calls that may hang are bounded."""

from __future__ import annotations

import threading
import time

from streamer.recovery import StallWatch, bounded


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_with_waiting_records_and_no_committed_progress_is_stuck_after_the_timeout() -> None:
    clock = Clock()
    watch = StallWatch(10.0, clock=clock)
    assert watch.check_every_s == 2.0 and not watch.due()
    clock.now = 2.0
    assert watch.due()
    assert watch.observe({0: 5, 1: 7}, {0: 9, 1: 7}) == []  # p0 waits from now on; p1 is caught up
    clock.now = 9.0
    assert watch.observe({0: 5, 1: 7}, {0: 12, 1: 9}) == []  # p1 waits now too
    clock.now = 12.0
    assert watch.observe({0: 5, 1: 7}, {0: 12, 1: 9}) == [0]
    assert watch.stalled_for() == 10.0
    clock.now = 13.0
    assert watch.observe({0: 6, 1: 7}, {0: 12, 1: 9}) == []  # p0 moved: not stuck; p1 only 4 s
    clock.now = 19.0
    assert watch.observe({0: 7, 1: 7}, {0: 12, 1: 9}) == [1]


def test_moving_or_caught_up_partitions_are_never_stuck_and_reset_forgets() -> None:
    clock = Clock()
    watch = StallWatch(5.0, clock=clock)
    for step in range(20):
        clock.now = float(step * 2)
        assert watch.observe({0: step, 1: 100}, {0: step + 50, 1: 100}) == []
    clock.now = 100.0
    watch.observe({0: 1}, {0: 9})
    clock.now = 104.0
    watch.reset()
    clock.now = 106.0
    assert watch.observe({0: 1}, {0: 9}) == []  # the clock started again at the look after the reset
    assert not watch.due()


def test_bounded_gives_up_on_a_call_that_hangs_and_swallows_errors() -> None:
    release = threading.Event()
    began = time.monotonic()
    assert bounded(release.wait, 0.2, "stuck call") is False
    assert time.monotonic() - began < 1.0
    release.set()

    def fails() -> None:
        raise RuntimeError("KafkaException _FENCED")

    assert bounded(fails, 1.0, "flush") is True
    assert bounded(lambda: None, 1.0, "fine") is True
