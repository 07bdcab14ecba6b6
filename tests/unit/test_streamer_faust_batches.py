"""The faust engine's batch loop with fake events, a fake processor and a fake producer (no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from fraudstream.clock import ManualClock
from fraudstream.errors import StateStoreError
from streamer.core import BatchCounts, BatchResult, BatchTimings, OutputMessage, RawRecord
from streamer.faust_batches import (
    BatchAbandoned,
    BatchHandler,
    EngineStatus,
    backoff_delays,
    records_from_events,
)


class FakeMessage:
    def __init__(self, offset: int, value: bytes | None, headers: Any = ()) -> None:
        self.topic = "transactions"
        self.partition = offset % 3
        self.offset = offset
        self.timestamp: float | None = 1_700_000_000.5 + offset
        self.headers = headers
        self.key = f"user-{offset}".encode()
        self.value = value
        self.refcount = 1  # as delivered to one stream
        self.acked = False

    def incref(self, n: int = 1) -> None:
        self.refcount += n


class FakeEvent:
    def __init__(self, message: FakeMessage) -> None:
        self.message = message

    def ack(self) -> bool:
        self.message.refcount -= 1
        if self.message.refcount == 0:
            self.message.acked = True
        return self.message.acked


def take_events_ack(events: Sequence[FakeEvent]) -> None:
    """What faust's take_events does after the body: one ack per event."""
    for event in events:
        event.ack()


class FakeProcessor:
    """Echoes one score message per record; fails `failures` times with StateStoreError first."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[list[RawRecord]] = []

    def __call__(self, records: Sequence[RawRecord]) -> BatchResult:
        self.calls.append(list(records))
        if self.failures:
            self.failures -= 1
            raise StateStoreError("redis down")
        messages = [OutputMessage("scores", r.key or b"", r.value or b"", [("h", b"1")]) for r in records]
        offsets = {(r.topic, r.partition): r.offset + 1 for r in records}
        return BatchResult(messages, BatchCounts(events=len(records)), BatchTimings(), offsets)


class FakeProducer:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.sent: list[OutputMessage] = []
        self.delivered: list[OutputMessage] = []

    async def send(self, message: OutputMessage) -> asyncio.Future[None]:
        self.sent.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_first:
            self.fail_first -= 1
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.delivered.append(message)
            future.set_result(None)
        return future


def make_handler(
    processor: FakeProcessor, producer: FakeProducer, *, stop: bool = False
) -> tuple[BatchHandler, list[float], EngineStatus]:
    clock = ManualClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    status = EngineStatus(started_at=clock.now(), started_mono=0.0, last_activity_mono=0.0)
    handler = BatchHandler(
        processor,
        producer.send,
        clock=clock,
        status=status,
        retry_max_s=1.0,
        backoff_random=lambda: 1.0,  # each wait at its ceiling (full jitter draws below it)
        stop_requested=lambda: stop,
        sleep=sleep,
        send_errors=(ConnectionError,),
    )
    return handler, slept, status


def events(n: int) -> list[FakeEvent]:
    return [FakeEvent(FakeMessage(i, f"v{i}".encode(), [("schema-version", b"1")])) for i in range(n)]


def test_records_keep_key_value_headers_partition_offset_and_timestamp() -> None:
    batch = [FakeEvent(FakeMessage(4, b"\xff\x00", {"a": b"x", "b": None})), FakeEvent(FakeMessage(5, None))]
    batch[1].message.timestamp = None
    records = records_from_events(batch)
    assert records[0] == RawRecord(
        "transactions", 1, 4, b"user-4", b"\xff\x00", [("a", b"x"), ("b", None)], 1_700_000_004_500
    )
    assert records[1].value is None and records[1].headers == [] and records[1].timestamp_ms is None


def test_batch_delivered_then_released_so_the_final_ack_is_take_events_own() -> None:
    processor, producer = FakeProcessor(), FakeProducer()
    handler, slept, status = make_handler(processor, producer)
    batch = events(7)
    result = asyncio.run(handler.handle(batch))
    assert [m.value for m in producer.delivered] == [f"v{i}".encode() for i in range(7)]
    assert len(processor.calls) == 1 and len(processor.calls[0]) == 7
    assert result.next_offsets[("transactions", 0)] == 7
    assert not any(e.message.acked for e in batch)  # our hold released, faust's reference still there
    take_events_ack(batch)
    assert all(e.message.acked for e in batch)
    assert (status.batches, status.events, status.in_flight, slept) == (1, 7, False, [])


def test_redis_failure_retries_same_batch_with_capped_backoff_and_acks_nothing_meanwhile() -> None:
    processor, producer = FakeProcessor(failures=5), FakeProducer()
    handler, slept, _ = make_handler(processor, producer)
    batch = events(3)
    asyncio.run(handler.handle(batch))
    assert slept == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert len(processor.calls) == 6 and all(call == processor.calls[0] for call in processor.calls)
    assert len(producer.delivered) == 3  # sent once, after Redis came back


def test_failed_sends_are_retried_alone_until_acknowledged() -> None:
    processor, producer = FakeProcessor(), FakeProducer(fail_first=3)
    handler, slept, _ = make_handler(processor, producer)
    batch = events(4)
    asyncio.run(handler.handle(batch))
    assert slept == [0.1]  # v0..v2 failed once, then only they were sent again
    assert sorted(m.value for m in producer.delivered) == [b"v0", b"v1", b"v2", b"v3"]
    assert [m.value for m in producer.sent] == [b"v0", b"v1", b"v2", b"v3", b"v0", b"v1", b"v2"]


def test_stop_during_outage_abandons_batch_without_acking_any_event() -> None:
    processor, producer = FakeProcessor(failures=100), FakeProducer()
    handler, _, status = make_handler(processor, producer, stop=True)
    batch = events(2)
    with pytest.raises(BatchAbandoned):
        asyncio.run(handler.handle(batch))
    take_events_ack(batch)  # even faust's own ack cannot make them committable
    assert not any(e.message.acked for e in batch)
    assert producer.sent == [] and status.batches == 0 and not status.in_flight


def test_unexpected_error_propagates_and_keeps_events_held() -> None:
    def broken(records: Sequence[RawRecord]) -> BatchResult:
        raise ValueError("bug")

    handler, _, _ = make_handler(FakeProcessor(), FakeProducer())
    handler.process = broken
    batch = events(2)
    with pytest.raises(ValueError):
        asyncio.run(handler.handle(batch))
    take_events_ack(batch)
    assert not any(e.message.acked for e in batch)


def test_backoff_delays_double_and_cap() -> None:
    delays = backoff_delays(2.0, random=lambda: 1.0)  # the ceilings; each wait is drawn below its ceiling
    assert [next(delays) for _ in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    jittered = backoff_delays(2.0, random=lambda: 0.25)
    assert [next(jittered) for _ in range(3)] == pytest.approx([0.025, 0.05, 0.1])
