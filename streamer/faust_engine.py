"""The faust-streaming engine: one agent (concurrency 1) over `transactions` and `labels`, micro-batches with
take_events, the shared core in a one-thread executor, outputs awaited before the events are acked (at-least-once;
a replayed record re-emits the core's cached bytes, so a duplicate alert keeps its alert_id). State stays in Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faust
import numpy as np
from aiokafka.errors import KafkaError

from fraudstream.clock import Clock, SystemClock
from fraudstream.errors import InfraError
from fraudstream.settings import Settings
from streamer.core import BatchResult, OutputMessage
from streamer.faust_batches import REDIS, BatchAbandoned, BatchHandler, EngineStatus
from streamer.faust_config import faust_app_id, faust_app_options, faust_data_dir
from streamer.faust_web import install_views
from streamer.progress import ProgressLog
from streamer.runtime import Runtime, build_runtime
from streamer.stats import EngineStats

log = logging.getLogger(__name__)

AGENT_NAME = "fraudstream-score"
HOUSEKEEPING_EVERY_S = 1.0
LAG_EVERY_S = 5.0
EXIT_CRASHED = 3
#: The shortest take() window of the faust engine: its batches close on size or on this timer.
FAUST_MIN_WAIT_MS = 10


@dataclass
class StopRequest:
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.reason is not None


class FaustWorker(faust.Worker):
    """faust's worker with our signal handling only: SIGTERM/SIGINT finish the batch in flight, then stop."""

    def __init__(self, app: faust.App, engine: FaustEngine, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.engine = engine

    def install_signal_handlers(self) -> None:
        self.loop.add_signal_handler(signal.SIGTERM, self.engine.request_stop, "SIGTERM")
        self.loop.add_signal_handler(signal.SIGINT, self.engine.request_stop, "SIGINT")

    def shutdown_now(self) -> None:
        self._schedule_shutdown(signal.SIGTERM)


class FaustEngine:
    """Builds the faust app around a Runtime; `run()` blocks until stopped and returns the counters."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        *,
        clock: Clock | None = None,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.clock = clock or SystemClock()
        self.max_events = max_events
        self.idle_exit_s = idle_exit_s
        self.stats = EngineStats()
        self.progress = ProgressLog(runtime.metrics)  # a progress line every few seconds, fed per batch
        now_mono = self.clock.monotonic()
        self.status = EngineStatus(started_at=self.clock.now(), started_mono=now_mono, last_activity_mono=now_mono)
        self.stop_request = StopRequest()
        self.worker: FaustWorker | None = None
        self._stopper: asyncio.Future[None] | None = None
        self._last_lag = 0.0
        self._next_offsets: dict[tuple[str, int], int] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faust-core")
        self.app = faust.App(**faust_app_options(settings))
        self.handler = BatchHandler(
            runtime.processor.process,
            self._send,
            clock=self.clock,
            status=self.status,
            retry_max_s=settings.streamer.redis_retry_max_s,
            executor=self.executor,
            stop_requested=lambda: bool(self.stop_request),
            on_delivered=self._account,
            send_errors=(KafkaError, faust.exceptions.ProducerSendError, ConnectionError, TimeoutError),
            on_retry=self._count_retry,
        )
        self._wire()

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        topics = self.settings.topics
        source = self.app.topic(topics.transactions, topics.labels, key_serializer="raw", value_serializer="raw")
        cfg = self.settings.streamer
        within_s = max(cfg.micro_batch_max_wait_ms, FAUST_MIN_WAIT_MS) / 1000.0  # take(within=0) never returns

        async def score(stream: Any) -> None:  # a faust.Stream; StreamT lacks take_events in faust's stubs
            async for events in stream.take_events(cfg.poll_batch_size, within=within_s):
                await self._handle_batch(events)

        # concurrency=1 on purpose: faust-streaming #606, concurrency > 1 can commit past unfinished work.
        self.app.agent(source, name=AGENT_NAME, concurrency=1)(score)
        self.app.timer(HOUSEKEEPING_EVERY_S)(self._housekeeping)

        async def on_assigned(app: Any, assigned: Any, **kwargs: Any) -> None:
            self.status.assigned = {(tp.topic, tp.partition) for tp in assigned}
            self.status.last_activity_mono = self.clock.monotonic()
            log.info("assigned %s", sorted(f"{t}[{p}]" for t, p in self.status.assigned))

        connect: Any = self.app.on_partitions_assigned.connect
        connect(on_assigned)

        install_views(
            self.app,
            status=self.status,
            holder=self.runtime.holder,
            store=self.runtime.store,
            metrics=self.runtime.metrics,
            monotonic=self.clock.monotonic,
            hashed_user_ids=self.settings.streamer.user_id_hmac_key is not None,
        )

    async def _send(self, message: OutputMessage) -> Any:
        return await self.app.producer.send(message.topic, message.key, message.value, None, None, message.headers)

    def _count_retry(self, what: str) -> None:
        if what == REDIS:
            self.stats.redis_retries += 1
            self.runtime.metrics.redis_retries.inc()
        else:
            self.stats.kafka_retries += 1

    async def _handle_batch(self, events: Any) -> None:
        if self.stats.first_data_at is None:
            self.stats.first_data_at = time.monotonic()
        try:
            await self.handler.handle(events)
        except BatchAbandoned as exc:
            log.warning("%s; %d events stay uncommitted and will be replayed", exc, len(events))
            self._exit_now(0)
        except Exception:
            # Nothing of this batch is acked (see BatchHandler); end the process before faust could commit it.
            log.critical("batch failed, stopping without committing it", exc_info=True)
            self._exit_now(EXIT_CRASHED)
        if self.max_events is not None and self.stats.records >= self.max_events:
            self.request_stop(f"max events {self.max_events} reached")

    def _exit_now(self, code: int) -> None:
        logging.shutdown()
        os._exit(code)

    def _account(self, result: BatchResult) -> None:
        now = time.time()
        c, s = result.counts, self.stats
        s.batches += 1
        s.records = self.status.events
        s.events += c.events
        s.alerts += c.alerts
        s.dlq += c.dlq
        s.late += c.late
        s.replayed += c.replayed
        s.latencies_s.extend(now - np.asarray(result.record_times_ms, dtype=np.float64) / 1000.0)
        s.last_commit_at = time.monotonic()
        self._next_offsets.update(result.next_offsets)
        self.runtime.metrics.observe_committed(result, now)
        self.progress.observe(result, now)

    # ------------------------------------------------------------------ housekeeping: idle exit, lag
    async def _housekeeping(self) -> None:
        now = self.clock.monotonic()
        idle = now - self.status.last_activity_mono
        if self.idle_exit_s is not None and idle >= self.idle_exit_s and not self.status.in_flight:
            self.request_stop(f"idle for {idle:.1f} s")
        if now - self._last_lag >= LAG_EVERY_S:
            self._last_lag = now
            self._report_lag()

    def _report_lag(self) -> None:
        lags = []
        try:
            for tp in self.app.consumer.assignment():
                position = self._next_offsets.get((tp.topic, tp.partition))
                high = self.app.consumer.highwater(tp)
                if position is not None and high is not None:
                    lags.append((tp.topic, tp.partition, max(int(high) - position, 0)))
        except Exception as exc:  # noqa: BLE001 - lag is best effort; the consumer may be rebalancing
            log.debug("lag not available: %s", exc)
            return
        self.runtime.metrics.set_lag(lags)

    # ------------------------------------------------------------------ stop and run
    def request_stop(self, reason: str) -> None:
        """Stop after the batch in flight is delivered (safe from signal handlers, on the loop)."""
        if self.stop_request:
            return
        self.stop_request.reason = reason
        log.info("stopping: %s", reason)
        self._stopper = asyncio.ensure_future(self._stop_after_batch())

    async def _stop_after_batch(self) -> None:
        while self.status.in_flight:
            await asyncio.sleep(0.05)
        if self.worker is not None:
            self.worker.shutdown_now()

    def run(self) -> EngineStats:
        web_port = int(self.app.conf.web_port)
        _check_port_free(self.settings.streamer.web_host, web_port)
        faust_data_dir(self.settings).mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.worker = FaustWorker(
            self.app,
            self,
            loop=loop,
            loglevel=self.settings.log_level,
            override_logging=False,
            redirect_stdouts=False,
            quiet=True,
        )
        self.worker.spinner = None  # no terminal spinner escapes in logs
        log.info(
            "faust engine: group %s, %s + %s, web http://%s:%d",
            faust_app_id(self.settings),
            self.settings.topics.transactions,
            self.settings.topics.labels,
            self.settings.streamer.web_host,
            web_port,
        )
        code: Any = 0
        try:
            self.worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code
        finally:
            self.executor.shutdown(wait=True)
        if code not in (0, None):
            raise InfraError(f"the faust worker stopped with exit code {code}; see the log above")
        log.info(
            "faust engine stopped", extra={"stats": {k: v for k, v in vars(self.stats).items() if k != "latencies_s"}}
        )
        return self.stats


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InfraError(
                f"the faust web server cannot bind {host}:{port} ({exc.strerror}); "
                "set FRAUD_STREAMER__WEB_PORT to a free port"
            ) from None


def run_faust_engine(
    settings: Settings, *, max_events: int | None = None, idle_exit_s: float | None = None
) -> dict[str, Any]:
    """Run one faust worker until SIGTERM/SIGINT, `max_events` records, or `idle_exit_s` without records.

    Returns the same summary as the kafka engine (counts, records/s, broker-to-delivered latency percentiles).
    """
    from fraudstream.infra.topics import ensure_topics
    from streamer.run import summary

    ensure_topics(settings)
    runtime = build_runtime(settings)
    try:
        stats = FaustEngine(settings, runtime, max_events=max_events, idle_exit_s=idle_exit_s).run()
    finally:
        runtime.close()
    busy = 0.0
    if stats.first_data_at is not None and stats.last_commit_at is not None:
        busy = stats.last_commit_at - stats.first_data_at
    return summary(stats, busy)
