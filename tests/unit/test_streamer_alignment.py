"""The event-time aligner: a partition running ahead waits for the slowest one; nothing is lost, reordered within a
partition, or held forever."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.alignment import EventTimeAligner

DAY = 86_400.0


def _add(a: EventTimeAligner[str], partition: int, items: list[tuple[float | None, str]]) -> None:
    a.add(partition, np.array([math.nan if t is None else t for t, _ in items]), [r for _, r in items])


def test_a_partition_days_ahead_waits_for_the_slowest_one() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=2 * DAY, max_wait_s=5.0)
    _add(a, 0, [(d * DAY, f"p0-d{d}") for d in range(10)])  # partition 0: ten days fetched at once
    _add(a, 1, [(0.0, "p1-d0")])
    # partition 1 has fetched day 0 and is not caught up: nothing beyond day 0 + 2 days goes out (a span within the
    # slack: fetch order, partition by partition)
    assert a.release(caught_up=set(), now=0.0) == ["p0-d0", "p0-d1", "p0-d2", "p1-d0"]
    assert a.release(caught_up=set(), now=1.0) == []
    _add(a, 1, [(3 * DAY, "p1-d3")])
    assert a.release(caught_up=set(), now=2.0) == ["p0-d3", "p0-d4", "p0-d5", "p1-d3"]
    # partition 1 caught up: partition 0 vouches for its own latest fetched time
    assert a.release(caught_up={1}, now=3.0) == [f"p0-d{d}" for d in range(6, 10)]
    assert len(a) == 0


def test_a_partition_that_fetched_nothing_yet_holds_everything_until_the_wait_is_over() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=DAY, max_wait_s=5.0)
    _add(a, 0, [(10.0, "x"), (20.0, "y")])
    assigned = {0, 1}
    assert a.release(caught_up=set(), now=100.0, assigned=assigned) == []  # partition 1: not one record yet
    assert a.release(caught_up=set(), now=104.9, assigned=assigned) == []
    assert a.release(caught_up=set(), now=105.0, assigned=assigned) == ["x", "y"]  # max_wait_s: it stops counting
    _add(a, 0, [(30.0, "z")])
    assert a.release(caught_up={1}, now=106.0, assigned=assigned) == ["z"]  # caught up: never a bound


def test_each_partition_keeps_its_order_and_partitions_merge_by_event_time() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=1.0, max_wait_s=1.0)
    _add(a, 0, [(50.0, "a50"), (10.0, "a10-late"), (60.0, "a60")])
    _add(a, 1, [(20.0, "b20"), (55.0, "b55")])
    _add(a, 2, [(None, "c-unreadable"), (5.0, "c5")])
    out = a.release(caught_up={0, 1, 2}, now=0.0)
    assert sorted(out) == sorted(["a50", "a10-late", "a60", "b20", "b55", "c-unreadable", "c5"])
    for partition in (["a50", "a10-late", "a60"], ["b20", "b55"], ["c-unreadable", "c5"]):
        assert [r for r in out if r in partition] == partition
    assert out.index("c5") < out.index("b20") < out.index("a50") < out.index("b55") < out.index("a60")


def test_a_batch_within_the_slack_keeps_fetch_order() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=100.0, max_wait_s=1.0)
    _add(a, 1, [(50.0, "b50")])
    _add(a, 0, [(10.0, "a10")])
    assert a.release(caught_up={0, 1}, now=0.0) == ["a10", "b50"]  # partitions in their order, no sort needed


def test_unreadable_records_never_hold_anything_back() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=0.0, max_wait_s=60.0)
    _add(a, 0, [(None, "bad")])
    _add(a, 1, [(5.0, "ok")])
    assert a.limit({0, 1}, caught_up={1}) == -math.inf  # partition 0 has fetched no time it can vouch for
    assert a.release(caught_up={0, 1}, now=0.0) == ["bad", "ok"]


def test_a_rewind_forgets_what_waits_and_says_where_each_partition_starts_again() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=0.0, max_wait_s=60.0)
    _add(a, 0, [(1.0, "a1"), (2.0, "a2")])
    _add(a, 1, [(1.5, "b1"), (9.0, "b9")])
    assert a.release(caught_up=set(), now=0.0) == ["a1", "b1", "a2"]  # partition 0 vouches for 2.0
    assert a.first_records() == {1: "b9"}
    a.drop([1])
    assert a.first_records() == {}
    a.clear()
    assert len(a) == 0
    assert a.limit({0}, caught_up=set()) == -math.inf  # fetched nothing since the rewind: wait for it


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[float]], list[tuple[int, int]]]:
    """Partitions of non-decreasing event times, and a fetch plan: (partition, records) chunks in any order."""
    parts = draw(st.integers(1, 4))
    times = [
        sorted(draw(st.lists(st.integers(0, 40), min_size=0, max_size=25)))
        for _ in range(parts)
    ]
    plan = draw(st.lists(st.tuples(st.integers(0, parts - 1), st.integers(1, 8)), min_size=1, max_size=60))
    return [[float(t) for t in p] for p in times], plan


def test_a_release_is_at_most_max_records_and_the_rest_goes_out_first_next_time() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(slack_s=1.0, max_wait_s=60.0)
    _add(a, 0, [(10.0, "a10"), (30.0, "a30"), (50.0, "a50")])
    _add(a, 1, [(20.0, "b20"), (40.0, "b40")])
    assert a.release(caught_up={0, 1}, now=0.0, max_records=2) == ["a10", "b20"]
    assert a.first_records() == {0: "a30", 1: "b40"}  # put back at the front of their partitions
    _add(a, 1, [(45.0, "b45")])
    assert a.release(caught_up={0, 1}, now=1.0, max_records=3) == ["a30", "b40", "b45"]
    assert a.release(caught_up={0, 1}, now=2.0, max_records=3) == ["a50"]
    assert len(a) == 0


@settings(max_examples=300, deadline=None)
@given(histories(), st.sampled_from([0.0, 3.0, 10.0]), st.sampled_from([None, 1, 4]))
def test_a_released_record_comes_after_every_record_more_than_the_slack_older(
    history: tuple[list[list[float]], list[tuple[int, int]]], slack: float, max_records: int | None
) -> None:
    times, plan = history
    a: EventTimeAligner[tuple[int, int]] = EventTimeAligner(slack_s=slack, max_wait_s=math.inf)
    fetched = [0] * len(times)
    released: list[tuple[int, int]] = []
    assigned = set(range(len(times)))

    def caught_up() -> set[int]:
        return {p for p in assigned if fetched[p] == len(times[p])}

    for partition, size in plan:
        upto = min(fetched[partition] + size, len(times[partition]))
        idx = range(fetched[partition], upto)
        a.add(partition, np.array([times[partition][i] for i in idx]), [(partition, i) for i in idx])
        fetched[partition] = upto
        out = a.release(caught_up(), now=0.0, assigned=assigned, max_records=max_records)
        assert max_records is None or len(out) <= max_records
        released += out
    for p in assigned:  # the rest of every partition, then the end
        idx = range(fetched[p], len(times[p]))
        a.add(p, np.array([times[p][i] for i in idx]), [(p, i) for i in idx])
        fetched[p] = len(times[p])
    while len(a):
        released += a.release(caught_up(), now=0.0, assigned=assigned, max_records=max_records)

    assert sorted(released) == [(p, i) for p in assigned for i in range(len(times[p]))]  # each exactly once
    position = {r: k for k, r in enumerate(released)}
    for p in assigned:
        order = [position[(p, i)] for i in range(len(times[p]))]
        assert order == sorted(order)
    for (p, i), k in position.items():
        t = times[p][i]
        for q in assigned:
            for j, u in enumerate(times[q]):
                if u < t - slack:
                    assert position[(q, j)] < k, f"{(q, j)} at {u} released after {(p, i)} at {t}"
