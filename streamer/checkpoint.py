"""Checkpoints of the kafka engine: every batch processed within one commit interval, committed together.

Like Kafka Streams' `commit.interval.ms` and quix-streams' `checkpointing/checkpoint.py`. A checkpoint opens with
the first batch after the last one ended, and each batch goes through it as it is processed:
  1. the batch's state and outputs are in Redis (the store, before `add`: a replay of it re-emits those bytes);
  2. its messages are produced now, into the checkpoint's transaction (exactly once) or straight out (at least once);
  3. once `commit_interval_ms` has passed since the checkpoint opened, `start_commit` ends it on a background
     thread while the worker processes the next batch: the consumed offsets go into the transaction and it commits
     (exactly once), or every output is flushed and then the offsets are committed to the group (at least once);
  4. `settle` waits for that commit before the next batch's messages are produced (one checkpoint at a time) and
     says COMMITTED or ABORTED; after an abort the engine rewinds to `first_offsets` and every batch of the
     checkpoint comes again, replayed from the store's output cache, which keeps outputs from the first offset of
     the checkpoint not committed (`unsettled_from`, given to the store before each batch).
A commit that does not return within `commit_timeout_s` (the engine: half of FRAUD_STREAMER__RECOVERY_TIMEOUT_S) is
given up: librdkafka's send_offsets_to_transaction can block past its own timeout once a restarted broker was the
group coordinator (confluentinc/librdkafka#5456, #5511), so the output is rebuilt (exactly once: a new producer with
the same transactional id fences the stuck one) and the stuck call is left on its daemon thread.
A commit that failed or was given up is in doubt, not aborted: a transaction the broker had already prepared to
commit is completed even after its producer is fenced, and rewinding it would score its events twice. So the output
first makes the outcome final (exactly once: a new producer's init_transactions returns only once the old
transaction is committed or aborted), then the group's committed offsets say which it was: COMMITTED if they
reached the checkpoint's ends, else ABORTED. If the broker cannot tell for `RESOLVE_TIMEOUT_S`, InfraError: the
worker stops, and its restart resumes from the committed offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition

from fraudstream.errors import InfraError
from streamer.kafka_tx import Output

if TYPE_CHECKING:
    from streamer.core import BatchResult, RawRecord

log = logging.getLogger(__name__)

#: Longer than a commit that works takes (the broker itself aborts a transaction open for 60 s); the kafka engine
#: passes half its recovery timeout instead.
COMMIT_TIMEOUT_S = 60.0
#: How long a commit in doubt may wait for the broker to say whether it went through (then InfraError).
RESOLVE_TIMEOUT_S = 120.0
#: One request for the group's committed offsets.
QUERY_TIMEOUT_S = 10.0

Partition = tuple[str, int]


class Status(Enum):
    OPEN = "open"  # taking batches
    COMMITTING = "committing"  # step 3 runs on the background thread
    COMMITTED = "committed"
    ABORTED = "aborted"  # nothing of it counts: its batches are replayed


@dataclass
class Checkpoint:
    opened_at: float  # monotonic
    batches: list[tuple[list[RawRecord], BatchResult]] = field(default_factory=list)
    next_offsets: dict[Partition, int] = field(default_factory=dict)  # what to commit, every topic consumed
    first_offsets: dict[Partition, int] = field(default_factory=dict)  # where a rewind goes
    status: Status = Status.OPEN
    committed_at: float | None = None  # wall time the commit ended
    error: BaseException | None = None

    def add(self, records: list[RawRecord], result: BatchResult) -> None:
        self.batches.append((records, result))
        for tp, offset in result.next_offsets.items():
            self.next_offsets[tp] = max(self.next_offsets.get(tp, offset), offset)
        for r in records:
            tp = (r.topic, r.partition)
            self.first_offsets[tp] = min(self.first_offsets.get(tp, r.offset), r.offset)


class Checkpointer:
    """Holds the one checkpoint open or committing, and the thread its commits run on.

    `topic`: the consumed topic whose offsets the output commits (the engine commits the labels' itself, after).
    """

    def __init__(
        self,
        output: Output,
        consumer: Consumer,
        topic: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        commit_timeout_s: float = COMMIT_TIMEOUT_S,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        self.output, self.consumer, self.topic = output, consumer, topic
        self.interval_s = interval_s
        self.clock = clock
        self.commit_timeout_s = commit_timeout_s
        self.resolve_timeout_s = resolve_timeout_s
        self.current: Checkpoint | None = None
        self._future: Future[float] | None = None
        self._output_stale = False  # a rebuild of the output failed (the broker was gone): retried at the next begin

    # ------------------------------------------------------------------ steps 2 and 3
    def add(self, records: list[RawRecord], result: BatchResult) -> Checkpoint:
        """Put a processed batch into the open checkpoint (opened now if none is) and produce its messages.

        Returns the checkpoint, ABORTED if its output failed (the caller rewinds it, this batch included).
        """
        cp = self.current
        if cp is not None and cp.status is not Status.OPEN:
            raise RuntimeError("settle() the committing checkpoint before adding a batch")
        if cp is None:
            cp = self.current = Checkpoint(self.clock())
        cp.add(records, result)
        try:
            if len(cp.batches) == 1:
                if self._output_stale:
                    self._rebuild_output()
                self.output.begin()
            self.output.produce(result.messages)
        except (KafkaException, InfraError) as exc:
            self._end(cp, Status.ABORTED, error=exc)
        return cp

    def _rebuild_output(self) -> None:
        """A new producer (exactly once: same transactional id, so the stuck one is fenced). InfraError if the
        broker does not answer; then the next checkpoint tries again."""
        self._output_stale = True
        self.output.reset()
        self._output_stale = False

    def remaining_s(self) -> float | None:
        """Seconds until the open checkpoint is due; None when none is open."""
        cp = self.current
        if cp is None or cp.status is not Status.OPEN:
            return None
        return max(cp.opened_at + self.interval_s - self.clock(), 0.0)

    def due(self) -> bool:
        return self.remaining_s() == 0.0

    def start_commit(self) -> None:
        """Step 3 for the open checkpoint, on the background thread."""
        cp = self.current
        if cp is None or cp.status is not Status.OPEN:
            return
        cp.status = Status.COMMITTING
        offsets = [TopicPartition(t, p, off) for (t, p), off in sorted(cp.next_offsets.items()) if t == self.topic]
        future = self._future = Future()
        # a daemon thread per commit: one stuck in librdkafka never blocks the next commit or the process' exit
        threading.Thread(target=self._commit, args=(offsets, future), name="kafka-commit", daemon=True).start()

    def _commit(self, offsets: list[TopicPartition], future: Future[float]) -> None:
        try:
            self.output.commit(offsets, self.consumer)
        except BaseException as exc:  # noqa: BLE001 - handed over to settle(), which raises what is not KafkaException
            future.set_exception(exc)
        else:
            future.set_result(time.time())

    # ------------------------------------------------------------------ step 4
    def committing_done(self) -> bool:
        return self._future is not None and self._future.done()

    def settle(self, timeout_s: float | None = None) -> Checkpoint | None:
        """Wait for the committing checkpoint and return it, COMMITTED or ABORTED; None if none was committing
        (an open checkpoint stays open). A failed commit, or one still running after commit_timeout_s (then given up,
        the output rebuilt), is resolved: COMMITTED if it went through after all. With timeout_s (a close), TimeoutError
        instead, and a failed commit is ABORTED without asking."""
        cp, future = self.current, self._future
        if cp is None or future is None:
            return None
        try:
            committed_at = future.result(self.commit_timeout_s if timeout_s is None else timeout_s)
        except KafkaException as exc:
            if timeout_s is not None:  # closing: nothing is rewound here, a restart resumes from the group's offsets
                return self._end(cp, Status.ABORTED, error=exc)
            return self._resolve(cp, exc, stuck=False)
        except TimeoutError:
            if timeout_s is not None:
                raise
            stuck = TimeoutError(f"the commit did not return in {self.commit_timeout_s:.0f} s")
            log.error("%s; rebuilding the producer", stuck)
            return self._resolve(cp, stuck, stuck=True)
        return self._end(cp, Status.COMMITTED, committed_at=committed_at)

    def _resolve(self, cp: Checkpoint, error: BaseException, *, stuck: bool) -> Checkpoint:
        """End a checkpoint whose commit failed (or was given up, `stuck`): make the outcome final, then read it
        from the group's committed offsets (the module's docstring says why)."""
        deadline = time.monotonic() + self.resolve_timeout_s
        while True:
            try:
                if stuck or self._output_stale:
                    self._rebuild_output()
                else:
                    self.output.resolve()
                went_through = self._group_reached(cp)
                break
            except (InfraError, KafkaException) as exc:
                self._output_stale = True  # the next try starts from a new producer
                if time.monotonic() > deadline:
                    raise InfraError(
                        f"a commit failed ({error}) and the broker did not say for "
                        f"{self.resolve_timeout_s:.0f} s whether it went through ({exc}); stopping, so that a restart "
                        "resumes from the committed offsets: check the broker, then start the worker again"
                    ) from None
                log.warning("cannot tell yet whether the failed commit went through (%s); retrying", exc)
                time.sleep(1.0)
        if went_through:
            log.warning("the commit reported a failure (%s) but went through; its checkpoint counts as committed",
                        error)
            return self._end(cp, Status.COMMITTED, committed_at=time.time())
        return self._end(cp, Status.ABORTED, error=error)

    def _group_reached(self, cp: Checkpoint) -> bool:
        """Whether the group's committed offsets of `topic` reached the checkpoint's ends (KafkaException: no
        answer). A checkpoint without offsets of `topic` counts as not committed (its replay changes nothing)."""
        ends = {p: off for (t, p), off in cp.next_offsets.items() if t == self.topic}
        if not ends:
            return False
        asked = [TopicPartition(self.topic, p) for p in sorted(ends)]
        answer = self.consumer.committed(asked, timeout=QUERY_TIMEOUT_S)
        for tp in answer:
            if tp.error is not None:
                raise KafkaException(tp.error)
        return all(tp.offset >= ends[tp.partition] for tp in answer)

    def commit_now(self) -> Checkpoint | None:
        """Commit the open checkpoint and wait (or settle the committing one): what a revoke or a stop needs."""
        self.start_commit()
        return self.settle()

    def abort(self) -> Checkpoint | None:
        """Abort the open checkpoint (its partitions were lost, or the worker fails); returns it ABORTED."""
        cp = self.current
        if cp is None or cp.status is not Status.OPEN:
            return None
        self.output.abort()
        return self._end(cp, Status.ABORTED)

    def _end(
        self, cp: Checkpoint, status: Status, *, error: BaseException | None = None, committed_at: float | None = None
    ) -> Checkpoint:
        cp.status, cp.error, cp.committed_at = status, error, committed_at
        self.current, self._future = None, None
        return cp

    def unsettled_from(self) -> dict[int, int]:
        """The first offset per partition of `topic` of the checkpoint not committed yet (the store keeps cached
        outputs from there on)."""
        cp = self.current
        if cp is None:
            return {}
        return {p: off for (t, p), off in cp.first_offsets.items() if t == self.topic}

    def close(self, timeout_s: float) -> None:
        """A committing checkpoint gets timeout_s to end, then it and an open one are given up (the output's close
        aborts the transaction): their batches replay on restart. Never blocks longer, never raises."""
        try:
            self.settle(timeout_s)
        except (TimeoutError, InfraError) as exc:
            log.warning("the last commit did not end at close (%s); its batches replay on restart", exc or "timeout")
        self.current, self._future = None, None
