"""Bounded recovery of the kafka engine from broker and coordinator failures.

Two stalls have been seen after a broker restart: a transactional call stuck in librdkafka (handled by the
checkpoint's commit timeout, streamer/checkpoint.py: the producer is rebuilt), and a member whose partitions were
lost and which then neither got them back nor made progress, for minutes, with a lag in the tens of thousands.
`StallWatch` detects the second from the group's point of view: every few seconds the engine reads, from the broker,
each partition's committed offset and end offset; a partition whose committed offset has not moved for half of
`recovery_timeout_s` while records wait behind it is stuck (half: the restart and the rejoin fit in the rest). A
member that owns a stuck partition, or owns none at all while one is stuck, restarts itself (new consumers, a new
producer: the old one is fenced). Nothing is decided while the broker does not answer: the clock starts once it
does, so the stall after the broker is back is bounded by recovery_timeout_s (half to decide, a check every tenth,
the rest to rejoin and commit).

`bounded` runs a call that may block in librdkafka (close, flush) on a daemon thread and gives up on it after a
timeout, logging what it raised: shutting down never hangs and never raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, OFFSET_INVALID, Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)

#: The longest one broker query of a check may take (a broker that does not answer is not back).
QUERY_TIMEOUT_S = 2.0


def bounded(call: Callable[[], object], timeout_s: float, what: str) -> bool:
    """Run call() on a daemon thread for at most timeout_s; True if it returned. Exceptions are logged."""
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - shutting down: what failed is logged, never raised
            log.warning("%s failed: %s", what, exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"bounded-{what}", daemon=True).start()
    if not done.wait(timeout_s):
        log.warning("%s did not return in %.0f s; left behind", what, timeout_s)
        return False
    return True


def group_progress(consumer: Consumer, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the end offset of each partition of topic (KafkaException: no answer).

    Three requests whatever the partition count: the topic's metadata, the committed offsets, and the end offsets in
    one ListOffsets per leader (`offsets_for_times` at "latest"; one watermark query per partition cost a round trip
    each, over a second of the consume loop per check on a busy broker). Partitions without a committed offset are
    left out (a new group has nothing to compare yet)."""
    metadata = consumer.list_topics(topic, timeout=QUERY_TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise KafkaException(described.error if described is not None else f"topic {topic} unknown")
    partitions = sorted(described.partitions)
    committed: dict[int, int] = {}
    for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=QUERY_TIMEOUT_S):
        if tp.error is None and tp.offset != OFFSET_INVALID and tp.offset >= 0:
            committed[tp.partition] = tp.offset
    ends: dict[int, int] = {}
    if committed:
        latest = [TopicPartition(topic, p, OFFSET_END) for p in sorted(committed)]
        for tp in consumer.offsets_for_times(latest, timeout=QUERY_TIMEOUT_S):
            if tp.error is None and tp.offset >= 0:
                ends[tp.partition] = tp.offset
    return committed, ends


@dataclass
class StallWatch:
    """Which partitions have had records waiting and no committed progress for timeout_s (broker answering).

    The engine passes half its recovery timeout."""

    timeout_s: float
    clock: Callable[[], float] = time.monotonic
    check_every_s: float = 0.0
    _next_check: float = 0.0
    _seen: dict[int, int] = field(default_factory=dict)
    _stuck_since: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.check_every_s <= 0:
            self.check_every_s = max(1.0, self.timeout_s / 5)
        self._next_check = self.clock() + self.check_every_s

    def due(self) -> bool:
        return self.clock() >= self._next_check

    def reset(self) -> None:
        """Forget what was seen (after a restart, or an outage of Redis that held the member on purpose)."""
        self._seen.clear()
        self._stuck_since.clear()
        self._next_check = self.clock() + self.check_every_s

    def skip(self) -> None:
        """The broker did not answer: decide nothing, look again later."""
        self._next_check = self.clock() + self.check_every_s

    def observe(self, committed: dict[int, int], ends: dict[int, int]) -> list[int]:
        """Record one look at the group; returns the partitions stuck for timeout_s or longer."""
        now = self.clock()
        self._next_check = now + self.check_every_s
        stuck = []
        for p, offset in committed.items():
            waiting = ends.get(p, offset) > offset
            moved = p in self._seen and self._seen[p] != offset
            self._seen[p] = offset
            if not waiting or moved:
                self._stuck_since.pop(p, None)
                continue
            since = self._stuck_since.setdefault(p, now)
            if now - since >= self.timeout_s:
                stuck.append(p)
        return stuck

    def stalled_for(self) -> float:
        """How long the longest-stuck partition has been stuck (0 when none)."""
        if not self._stuck_since:
            return 0.0
        return self.clock() - min(self._stuck_since.values())
