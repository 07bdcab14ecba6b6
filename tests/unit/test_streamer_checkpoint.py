"""The commit interval of the kafka engine (streamer/checkpoint.py) with a fake output, a fake group (what the
broker says is committed) and an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from fraudstream.errors import InfraError
from streamer.checkpoint import Checkpointer, Status
from streamer.core import BatchCounts, BatchResult, BatchTimings, RawRecord
from streamer.outputs import OutputMessage

TOPIC = "transactions"


class FakeOutput:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.committed: list[list[tuple[str, int, int]]] = []
        self.fail_next_commit = False
        self.group: dict[tuple[str, int], int] = {}  # what the broker holds as the group's committed offsets

    def begin(self) -> None:
        self.calls.append("begin")

    def produce(self, messages: Sequence[OutputMessage]) -> None:
        self.calls.append(f"produce {len(messages)}")

    def commit(self, offsets: list[TopicPartition], consumer: object) -> None:
        self.calls.append("commit")
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker went away"))
        self.committed.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])
        self.group.update({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def resolve(self) -> None:
        self.calls.append("resolve")

    def abort(self) -> None:
        self.calls.append("abort")

    def reset(self) -> None:
        self.calls.append("reset")

    def close(self, timeout_s: float) -> None:
        self.calls.append("close")


class FakeGroup:
    """The consumer's side the checkpointer uses: the group's committed offsets, as the output left them."""

    def __init__(self, output: FakeOutput) -> None:
        self.output = output
        self.unreachable = False

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.unreachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no broker"))
        return [TopicPartition(tp.topic, tp.partition, self.output.group.get((tp.topic, tp.partition), -1001))
                for tp in partitions]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(partition: int, first: int, count: int, topic: str = TOPIC) -> tuple[list[RawRecord], BatchResult]:
    records = [RawRecord(topic, partition, first + i, b"k", b"v", []) for i in range(count)]
    messages = [OutputMessage("scores", b"k", b"s", []) for _ in records]
    result = BatchResult(messages, BatchCounts(), BatchTimings(), {(topic, partition): first + count})
    return records, result


@pytest.fixture
def parts() -> Iterator[tuple[FakeOutput, Clock, Checkpointer]]:
    output, clock = FakeOutput(), Clock()
    checkpoints = Checkpointer(output, FakeGroup(output), TOPIC, interval_s=0.5, clock=clock)  # type: ignore[arg-type]
    yield output, clock, checkpoints
    checkpoints.close(1.0)


def test_one_transaction_spans_every_batch_of_the_interval(parts: tuple[FakeOutput, Clock, Checkpointer]) -> None:
    output, clock, checkpoints = parts
    assert checkpoints.remaining_s() is None and not checkpoints.due()
    for i in range(3):
        checkpoints.add(*batch(0, 10 * i, 10))
        clock.now += 0.125  # binary fractions: exact sums
    checkpoints.add(*batch(1, 5, 2))
    assert checkpoints.remaining_s() == 0.125 and not checkpoints.due()
    assert checkpoints.unsettled_from() == {0: 0, 1: 5}
    clock.now += 0.125
    assert checkpoints.due()
    checkpoints.start_commit()
    assert checkpoints.remaining_s() is None  # committing: nothing open
    with pytest.raises(RuntimeError):
        checkpoints.add(*batch(0, 30, 1))  # the caller settles first
    done = checkpoints.settle()
    assert done is not None and done.status is Status.COMMITTED and len(done.batches) == 4
    assert output.calls == ["begin", "produce 10", "produce 10", "produce 10", "produce 2", "commit"]
    assert output.committed == [[(TOPIC, 0, 30), (TOPIC, 1, 7)]]
    assert checkpoints.settle() is None and checkpoints.unsettled_from() == {}
    # the next batch opens the next checkpoint, its interval counted from then
    checkpoints.add(*batch(0, 30, 5))
    assert checkpoints.remaining_s() == 0.5
    assert output.calls[-2:] == ["begin", "produce 5"]


def test_a_failed_commit_aborts_the_whole_interval(parts: tuple[FakeOutput, Clock, Checkpointer]) -> None:
    output, _, checkpoints = parts
    checkpoints.add(*batch(0, 100, 4))
    checkpoints.add(*batch(0, 104, 4))
    checkpoints.add(*batch(2, 7, 1, topic="labels"))
    output.fail_next_commit = True
    checkpoints.start_commit()
    aborted = checkpoints.settle()
    assert aborted is not None and aborted.status is Status.ABORTED and isinstance(aborted.error, KafkaException)
    assert output.calls[-2:] == ["commit", "resolve"]  # the outcome made final before the group was asked
    # every batch of it is rewound to its first offset; labels' offsets are the engine's, not the output's
    assert aborted.first_offsets == {(TOPIC, 0): 100, ("labels", 2): 7}
    assert aborted.next_offsets == {(TOPIC, 0): 108, ("labels", 2): 8}
    assert checkpoints.current is None and output.committed == []


def test_interval_zero_commits_each_batch_and_abort_gives_up_an_open_one(
    parts: tuple[FakeOutput, Clock, Checkpointer],
) -> None:
    output, _, _ = parts
    checkpoints = Checkpointer(output, FakeGroup(output), TOPIC, interval_s=0.0, clock=Clock())  # type: ignore[arg-type]
    try:
        checkpoints.add(*batch(0, 0, 3))
        assert checkpoints.due()
        first = checkpoints.commit_now()
        assert first is not None and first.status is Status.COMMITTED
        checkpoints.add(*batch(0, 3, 3))
        lost = checkpoints.abort()
        assert lost is not None and lost.status is Status.ABORTED and lost.first_offsets == {(TOPIC, 0): 3}
        assert output.calls[-1] == "abort" and checkpoints.abort() is None and checkpoints.commit_now() is None
    finally:
        checkpoints.close(1.0)


def test_a_commit_stuck_in_librdkafka_is_given_up_and_the_output_rebuilt() -> None:
    output, release = FakeOutput(), threading.Event()
    output.commit = lambda offsets, consumer: release.wait(10)  # type: ignore[method-assign,assignment]
    checkpoints = Checkpointer(output, FakeGroup(output), TOPIC, interval_s=0.0,  # type: ignore[arg-type]
                               commit_timeout_s=0.2)
    try:
        checkpoints.add(*batch(0, 0, 3))
        checkpoints.start_commit()
        with pytest.raises(TimeoutError):
            checkpoints.settle(timeout_s=0.05)  # close's bounded wait: the caller decides
        stuck = checkpoints.settle()
        assert stuck is not None and stuck.status is Status.ABORTED and isinstance(stuck.error, TimeoutError)
        assert output.calls[-1] == "reset" and checkpoints.current is None
        checkpoints.add(*batch(0, 0, 3))  # the next checkpoint does not wait for the stuck thread
        assert output.calls[-2:] == ["begin", "produce 3"]
    finally:
        release.set()
        checkpoints.close(1.0)


def _failing_commit_that_went_through(output: FakeOutput) -> None:
    """The broker commits the transaction, but the answer never reaches the worker."""
    real = output.commit

    def commit(offsets: list[TopicPartition], consumer: object) -> None:
        real(offsets, consumer)
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit_transaction timed out"))

    output.commit = commit  # type: ignore[method-assign]


def test_a_failed_commit_that_went_through_counts_as_committed_not_rewound(
    parts: tuple[FakeOutput, Clock, Checkpointer],
) -> None:
    output, _, checkpoints = parts
    _failing_commit_that_went_through(output)
    checkpoints.add(*batch(0, 100, 4))
    checkpoints.add(*batch(1, 50, 2))
    checkpoints.start_commit()
    done = checkpoints.settle()
    # rewinding it would score its six events twice
    assert done is not None and done.status is Status.COMMITTED and done.committed_at is not None
    assert output.calls[-1] == "resolve" and checkpoints.current is None


def test_a_stuck_commit_that_went_through_counts_as_committed() -> None:
    output, release = FakeOutput(), threading.Event()

    def commit(offsets: list[TopicPartition], consumer: object) -> None:
        output.group.update({(tp.topic, tp.partition): tp.offset for tp in offsets})  # the broker has it...
        release.wait(10)  # ...the call never returns

    output.commit = commit  # type: ignore[method-assign]
    checkpoints = Checkpointer(output, FakeGroup(output), TOPIC, interval_s=0.0,  # type: ignore[arg-type]
                               commit_timeout_s=0.2)
    try:
        checkpoints.add(*batch(0, 0, 3))
        checkpoints.start_commit()
        done = checkpoints.settle()
        assert done is not None and done.status is Status.COMMITTED and output.calls[-1] == "reset"
    finally:
        release.set()
        checkpoints.close(1.0)


def test_a_commit_in_doubt_with_no_broker_to_ask_stops_the_worker_with_one_line() -> None:
    output = FakeOutput()
    group = FakeGroup(output)
    checkpoints = Checkpointer(output, group, TOPIC, interval_s=0.0, resolve_timeout_s=0.0)  # type: ignore[arg-type]
    output.fail_next_commit, group.unreachable = True, True
    checkpoints.add(*batch(0, 0, 3))
    checkpoints.start_commit()
    with pytest.raises(InfraError, match=r"did not say for 0 s whether it went through .*start the worker again"):
        checkpoints.settle()
    assert output.calls[-1] == "resolve"
