"""One faust micro-batch through the core: events -> RawRecords -> process (Redis retried) -> sends awaited -> release.

Framework-light on purpose (duck-typed events, injected send and sleep) so the loop is unit-tested without a broker.
Each event's message is held (an extra reference) until its outputs are acknowledged by the broker, so no faust code
path (take_events' own ack on close, a cancelled agent) can mark it committable before its alerts are out.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fraudstream.clock import Clock
from fraudstream.errors import StateStoreError
from state.redis_client import RetryBackoff
from streamer.core import BatchResult, OutputMessage, RawRecord

log = logging.getLogger(__name__)

#: Sends one message; returns the delivery future (what faust's Producer.send returns).
SendFn = Callable[[OutputMessage], Awaitable[Awaitable[Any]]]
ProcessFn = Callable[[Sequence[RawRecord]], BatchResult]


#: What `on_retry` is told failed.
REDIS = "Redis"
PRODUCER = "Kafka producer"


class MessageLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def headers(self) -> Any: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...

    def incref(self, n: int = 1) -> None: ...


class EventLike(Protocol):
    @property
    def message(self) -> MessageLike: ...

    def ack(self) -> bool: ...


class BatchAbandoned(Exception):
    """A stop was requested while the batch could not complete; nothing of it was acked."""


@dataclass
class EngineStatus:
    """What /health reports and what the idle/max-events exit checks read."""

    started_at: datetime
    started_mono: float
    last_activity_mono: float
    last_batch_at: datetime | None = None
    batches: int = 0
    events: int = 0
    in_flight: bool = False
    retrying_since_mono: float | None = None
    assigned: set[tuple[str, int]] = field(default_factory=set)


def _headers(raw: Any) -> list[tuple[str, bytes | None]]:
    if not raw:
        return []
    items: Iterable[Any] = raw.items() if isinstance(raw, Mapping) else raw
    out: list[tuple[str, bytes | None]] = []
    for name, value in items:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        out.append((text, value.encode() if isinstance(value, str) else value))
    return out


def records_from_events(events: Sequence[EventLike]) -> list[RawRecord]:
    """The engine-neutral records of a batch: original key/value bytes, headers, partition, offset, timestamp."""
    records = []
    for event in events:
        msg = event.message
        ts = msg.timestamp
        records.append(
            RawRecord(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=msg.value,
                headers=_headers(msg.headers),
                timestamp_ms=int(ts * 1000) if ts is not None else None,
            )
        )
    return records


def backoff_delays(
    max_s: float, first_s: float = 0.1, random: Callable[[], float] = _random.random
) -> Iterator[float]:
    """Below 0.1, 0.2, 0.4, ... seconds, capped at max_s, forever: full jitter (state.redis_client.RetryBackoff)."""
    backoff = RetryBackoff(max_s, first_s, random)
    while True:
        yield backoff.next_s()


class BatchHandler:
    """Runs batches through the core one at a time; retries Redis and broker failures without acking."""

    def __init__(
        self,
        process: ProcessFn,
        send: SendFn,
        *,
        clock: Clock,
        status: EngineStatus,
        retry_max_s: float,
        executor: Executor | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        on_delivered: Callable[[BatchResult], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        send_errors: tuple[type[BaseException], ...] = (),
        on_retry: Callable[[str], None] | None = None,
        backoff_random: Callable[[], float] = _random.random,
    ) -> None:
        self.process = process
        self.send = send
        self.clock = clock
        self.status = status
        self.retry_max_s = retry_max_s
        self.executor = executor
        self.stop_requested = stop_requested
        self.on_delivered = on_delivered
        self.sleep = sleep
        self.send_errors = send_errors
        self.on_retry = on_retry
        self.backoff_random = backoff_random

    async def handle(self, events: Sequence[EventLike]) -> BatchResult:
        """Process and deliver one batch; acks (releases) its events only once every output is acknowledged."""
        for event in events:
            event.message.incref()  # held until delivered: see module docstring
        self.status.in_flight = True
        try:
            records = records_from_events(events)
            t0 = self.clock.monotonic()
            result: BatchResult = await self._retrying(REDIS, lambda: self._process(records), (StateStoreError,))
            t1 = self.clock.monotonic()
            pending = list(result.messages)
            await self._retrying(PRODUCER, lambda: self._deliver(pending), self.send_errors)
            log.debug(
                "batch of %d: core %.3f s (redis %.3f, score %.3f), delivery of %d messages %.3f s",
                len(records),
                t1 - t0,
                result.timings.redis_s,
                result.timings.score_s,
                len(result.messages),
                self.clock.monotonic() - t1,
            )
        finally:
            self.status.in_flight = False
            self.status.retrying_since_mono = None
        for event in events:
            event.ack()  # drops our reference; take_events' own ack then makes the offset committable
        self.status.batches += 1
        self.status.events += len(events)
        self.status.last_batch_at = self.clock.now()
        self.status.last_activity_mono = self.clock.monotonic()
        if self.on_delivered is not None:
            self.on_delivered(result)
        return result

    async def _process(self, records: list[RawRecord]) -> BatchResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.process, records)

    async def _deliver(self, pending: list[OutputMessage]) -> None:
        """Send every pending message and await its acknowledgement; what failed stays in `pending` for a retry."""
        futures = [await self.send(message) for message in pending]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        failed = [(m, o) for m, o in zip(pending, outcomes, strict=True) if isinstance(o, BaseException)]
        pending[:] = [m for m, _ in failed]
        if failed:
            raise failed[0][1]

    async def _retrying(
        self, what: str, attempt: Callable[[], Awaitable[Any]], retry_on: tuple[type[BaseException], ...]
    ) -> Any:
        delays = backoff_delays(self.retry_max_s, random=self.backoff_random)
        failures = 0
        while True:
            try:
                return await attempt()
            except retry_on as exc:
                failures += 1
                if self.status.retrying_since_mono is None:
                    self.status.retrying_since_mono = self.clock.monotonic()
                if self.on_retry is not None:
                    self.on_retry(what)
                if self.stop_requested():
                    raise BatchAbandoned(f"stop requested while {what} was failing: {exc}") from exc
                delay = next(delays)
                log.warning(
                    "%s failed (%s); batch not acked, retry %d in %.1f s",
                    what,
                    exc,
                    failures,
                    delay,
                    extra={"retry": failures, "delay_s": delay},
                )
                await self.sleep(delay)
