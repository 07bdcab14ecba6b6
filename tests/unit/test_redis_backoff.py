"""Redis retry backoff: exponential, capped at the setting, full jitter (an injected random source)."""

from __future__ import annotations

import itertools

import pytest

from fraudstream.settings import build_settings
from state.redis_client import RetryBackoff


def test_waits_double_up_to_the_cap_and_are_scaled_by_the_random_draw() -> None:
    draws = itertools.cycle([0.999999, 0.5, 0.0])
    backoff = RetryBackoff(max_s=4.0, first_s=0.1, random=lambda: next(draws))
    ceilings = []
    waits = []
    for _ in range(12):
        ceilings.append(backoff.ceiling_s())
        waits.append(backoff.next_s())
    assert ceilings[:7] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 4.0])
    assert all(c == 4.0 for c in ceilings[6:])
    assert waits[0] == pytest.approx(0.1 * 0.999999) and waits[1] == pytest.approx(0.1) and waits[2] == 0.0
    assert max(waits) < 4.0


def test_full_jitter_spreads_workers_and_never_exceeds_the_cap() -> None:
    import random

    rng = random.Random(7)
    backoff = RetryBackoff(max_s=2.0, random=rng.random)
    waits = [backoff.next_s() for _ in range(2000)]
    late = waits[10:]  # all at the cap's ceiling
    assert max(waits) < 2.0 and min(late) < 0.1 and max(late) > 1.9  # uniform over [0, cap)
    assert 0.9 < sum(late) / len(late) < 1.1


def test_reset_starts_over_and_many_failures_do_not_overflow() -> None:
    backoff = RetryBackoff(max_s=3.0, random=lambda: 1.0)
    for _ in range(5000):
        backoff.next_s()
    assert backoff.ceiling_s() == 3.0
    backoff.reset()
    assert backoff.next_s() == pytest.approx(0.1)


def test_the_default_cap_is_a_few_seconds() -> None:
    assert build_settings({}, environ={}).streamer.redis_retry_max_s <= 5.0
    with pytest.raises(ValueError):
        RetryBackoff(max_s=0)
