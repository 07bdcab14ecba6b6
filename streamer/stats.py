"""A worker's running counts, shared by both engines (streamer/kafka_engine.py, streamer/faust_engine.py) and the
run summary (streamer/run.py); part of the shared core, so no engine module imports another."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streamer.metrics import RecentValues

#: How many recent per-record latencies a worker keeps for its summary.
LATENCY_WINDOW = 100_000


@dataclass
class EngineStats:
    batches: int = 0
    transactions: int = 0  # checkpoints committed (exactly once: Kafka transactions)
    records: int = 0
    events: int = 0
    alerts: int = 0
    dlq: int = 0
    late: int = 0
    replayed: int = 0
    redis_retries: int = 0
    kafka_retries: int = 0
    started: float = field(default_factory=time.monotonic)
    first_data_at: float | None = None  # monotonic time the first records arrived
    last_commit_at: float | None = None  # monotonic time the last batch committed
    #: broker timestamp -> checkpoint committed, seconds, for the most recent records (allocated once: no growth)
    latencies_s: RecentValues = field(default_factory=lambda: RecentValues(LATENCY_WINDOW))
