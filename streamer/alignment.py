"""Event-time alignment of a worker's partitions: what a batch may hold so that merchant features do not depend on
how the input was batched.

A merchant's features for an event at t read the merchant's transactions of every partition in windows that end at
t - label delay (features/merchant.py). They are the same however the input was batched as long as every
transaction before t - delay, of any partition, is folded before the event. A live stream gives that by itself
(the partitions move together in event time); a backlog does not: one partition may run days ahead of another.

So fetched records wait here and are released up to a time T: every partition that is not caught up (its position
short of its end offset) vouches for the latest event time it has fetched (its next records are later, up to the
grace period), and T is the smallest of those plus `slack_s` (the label delay less the grace period); caught-up
partitions set no bound. A partition that has fetched nothing yet vouches for nothing: nothing is released until
it has. Each partition's records go out as a prefix (the core keeps per-partition order), and when the released
records span more than the slack they are merged by event time across partitions (each partition's order kept), so
an event's window is complete whether its predecessors came in an earlier batch or earlier in the same one.
A partition that keeps the others waiting longer than `max_wait_s` stops counting until it fetches again (Kafka
Streams' max.task.idle.ms), so an idle partition never stalls the stream. Records without a readable time (they
go to the dead-letter topic) never hold anything back. All of it per batch, over arrays.

>>> import numpy as np
>>> a = EventTimeAligner(slack_s=10, max_wait_s=1.0)
>>> a.add(0, np.array([100.0, 130.0]), ["a0", "a1"])
>>> a.add(1, np.array([105.0]), ["b0"])
>>> a.release(caught_up=set(), now=0.0)  # partition 1 vouches for 105: up to 115
['a0', 'b0']
>>> a.release(caught_up={1}, now=0.0)  # partition 1 caught up: partition 0 vouches for 130
['a1']
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Set
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
F64 = npt.NDArray[np.float64]


@dataclass
class _Waiting(Generic[T]):
    """One partition's fetched records not released yet (NaN: no readable time), and the latest time fetched."""

    times: F64 = field(default_factory=lambda: np.zeros(0))
    records: list[T] = field(default_factory=list)
    latest: float = -math.inf


class EventTimeAligner(Generic[T]):
    """Per-partition buffers of fetched records and the release rule above. Pure: the engine says which partitions
    are caught up and what time it is (monotonic seconds)."""

    def __init__(self, slack_s: float, max_wait_s: float) -> None:
        self.slack_s = slack_s
        self.max_wait_s = max_wait_s
        self._parts: dict[Hashable, _Waiting[T]] = {}
        self._held_since: float | None = None  # since when records wait with none released
        self._excused: set[Hashable] = set()  # kept the others waiting too long: not counted until they fetch again

    def add(self, partition: Hashable, times: F64, records: list[T]) -> None:
        """A partition's fetched records in fetch order, with their event times in seconds (NaN: none)."""
        if not records:
            return
        self._excused.discard(partition)
        part = self._parts.setdefault(partition, _Waiting())
        part.times = np.concatenate([part.times, np.asarray(times, dtype=np.float64)])
        part.records.extend(records)
        if np.isfinite(part.times).any():
            part.latest = max(part.latest, float(np.nanmax(part.times)))

    def __len__(self) -> int:
        return sum(len(p.records) for p in self._parts.values())

    def waiting(self, partition: Hashable) -> int:
        part = self._parts.get(partition)
        return len(part.records) if part is not None else 0

    def first_records(self) -> dict[Hashable, T]:
        """The first record still waiting per partition (where a rewind has to go back to)."""
        return {p: part.records[0] for p, part in self._parts.items() if part.records}

    def drop(self, partitions: Iterable[Hashable]) -> None:
        """Forget these partitions (revoked, or rewound: their records come again from the consumer)."""
        for partition in list(partitions):
            self._parts.pop(partition, None)
            self._excused.discard(partition)
        if not len(self):
            self._held_since = None

    def clear(self) -> None:
        self.drop(list(self._parts))

    def limit(self, assigned: Iterable[Hashable], caught_up: Set[Hashable]) -> float:
        """T: the smallest event time a partition not caught up vouches for, plus the slack (-inf: wait)."""
        vouched = [self._parts[p].latest if p in self._parts else -math.inf for p in assigned if p not in caught_up]
        return min(vouched, default=math.inf) + self.slack_s

    def release(self, caught_up: Set[Hashable], now: float, assigned: Iterable[Hashable] | None = None,
                max_records: int | None = None) -> list[T]:  # fmt: skip
        """The records that may be processed now (see the module docstring), at most `max_records` of them: the
        first of the merged order; the rest go back to the front of their partitions and are released first next
        time (so a backlog that becomes releasable at once still goes out in batches of the poll size)."""
        if not len(self):
            self._held_since = None
            return []
        partitions = set(self._parts) if assigned is None else set(assigned) | set(self._parts)
        runs = self._take(self.limit(partitions, set(caught_up) | self._excused))
        if not runs and self._held_since is not None and now - self._held_since >= self.max_wait_s:
            # a partition with nothing fetched has kept the others waiting too long: it stops counting until it
            # fetches again (an idle partition would otherwise hold every batch this long)
            self._excused |= {p for p in partitions if not self.waiting(p)}
            runs = self._take(self.limit(partitions, set(caught_up) | self._excused))
        order = _merged_order(runs, self.slack_s)
        if max_records is not None and len(order) > max_records:
            self._put_back(runs, order[max_records:])
            order = order[:max_records]
        if runs:
            self._held_since = now if len(self) else None
        elif self._held_since is None:
            self._held_since = now
        records = [r for _, _, recs in runs for r in recs]
        return [records[i] for i in order.tolist()]

    def _put_back(self, runs: list[tuple[Hashable, F64, list[T]]], kept: npt.NDArray[np.intp]) -> None:
        """Return the records at positions `kept` (of the runs concatenated) to the front of their partitions.
        The merged order keeps each partition's order, so what goes back is a suffix of each run."""
        starts = np.cumsum([0] + [len(recs) for _, _, recs in runs])
        for k, (partition, times, recs) in enumerate(runs):
            back = int(np.count_nonzero((kept >= starts[k]) & (kept < starts[k + 1])))
            if not back:
                continue
            part = self._parts.setdefault(partition, _Waiting())
            part.times = np.concatenate([times[len(recs) - back :], part.times])
            part.records = recs[len(recs) - back :] + part.records

    def _take(self, limit: float) -> list[tuple[Hashable, F64, list[T]]]:
        """Each partition's prefix of records at or before `limit` (timeless ones pass)."""
        runs = []
        for partition in sorted(self._parts, key=repr):
            part = self._parts[partition]
            beyond = np.flatnonzero(part.times > limit)  # NaN compares False: a timeless record passes
            cut = int(beyond[0]) if len(beyond) else len(part.records)
            if not cut:
                continue
            runs.append((partition, part.times[:cut], part.records[:cut]))
            part.times, part.records = part.times[cut:], part.records[cut:]
            if not part.records:
                part.times = np.zeros(0)
        return runs


def _merged_order(runs: list[tuple[Hashable, F64, list[T]]], slack_s: float) -> npt.NDArray[np.intp]:
    """Positions into the runs concatenated, in release order: fetch order when they span at most the slack (no
    event can then read another's window), else merged by event time with each partition's order kept (a stable
    sort on each run's running maximum; a timeless record sorts with the record before it)."""
    count = sum(len(recs) for _, _, recs in runs)
    if not runs:
        return np.zeros(0, dtype=np.intp)
    times = np.concatenate([t for _, t, _ in runs])
    finite = times[np.isfinite(times)]
    if len(runs) == 1 or not len(finite) or float(finite.max() - finite.min()) <= slack_s:
        return np.arange(count, dtype=np.intp)
    keys = np.concatenate([np.fmax.accumulate(np.nan_to_num(t, nan=-math.inf)) for _, t, _ in runs])
    return np.argsort(keys, kind="stable").astype(np.intp)
