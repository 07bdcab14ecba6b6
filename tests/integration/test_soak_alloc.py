"""The leak check of `make test`: allocation growth per processed event, which machine noise cannot move.

The real core (`StreamProcessor`: decode, features, the compiled folds, scoring, outputs) runs in this process
against the real redis-server, batch after batch of lapped traffic (each lap a week later, with its own transaction
ids: new events, same users). tracemalloc counts the bytes Python and NumPy hold; after a warm-up that fills the
30-day windows (so the per-user state has reached its size), the bytes held after each lap, against the events
processed so far, must grow by less than LEAK_BYTES_PER_EVENT per event. A leak of one small object per event
(64 bytes or more) fails it; other jobs on the machine change the timing, not the count. The RSS soak over
minutes stays in the bench (`python -m bench --sections soak`, bench/soak.py).
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from fraudstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.soak]

PARTITIONS = 6
BATCH = 500
WARMUP_LAPS = 6  # 6 weeks: the 30-day windows are full, every user's state at its steady size
MEASURED_LAPS = 6
#: The bound: well under one small Python object per event (a leaked bytes object of 20 bytes holds ~53).
LEAK_BYTES_PER_EVENT = 16.0


def _laps(frame: pd.DataFrame, laps: int) -> list[list[object]]:
    """Raw records per lap: the frame moved k weeks later, new transaction ids, key = user id, offsets running."""
    from bankbus.encode import transaction_values
    from bench.soak import in_the_past, lap
    from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER
    from streamer.core import RawRecord

    frame = in_the_past(frame, laps, pd.Timestamp.now(tz="UTC"))
    offsets = [-1] * PARTITIONS
    out = []
    for k in range(laps):
        shifted = lap(frame, k)
        records = []
        for user, value in zip(shifted["user_id"].astype(str), transaction_values(shifted), strict=True):
            p = zlib.crc32(user.encode()) % PARTITIONS
            offsets[p] += 1
            records.append(RawRecord("transactions", p, offsets[p], user.encode(), value,
                                     [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode())]))
        out.append(records)
    return out


def test_allocations_do_not_grow_per_processed_event(stack_settings: Settings, unique_name: str,
                                                      tmp_path: object) -> None:
    from pathlib import Path

    from bankbus.simulator import SimulationConfig, simulate_frame
    from fraudstream.clock import ManualClock
    from models.registry import ModelRegistry
    from models.tiny import publish_tiny_model
    from streamer.core import StreamProcessor
    from streamer.runtime import build_store
    from streamer.scoring import ModelHolder

    root = Path(str(tmp_path))
    publish_tiny_model(root)
    model = ModelRegistry(root, allow_unsigned=True).load()
    settings = stack_settings.with_overrides(redis={"namespace": f"ns{abs(hash(unique_name)) % 10**12}"},
                                             streamer={"scorer": "stack"})
    store = build_store(settings, partitions=PARTITIONS, label_partitions=PARTITIONS)
    processor = StreamProcessor(settings, store, ModelHolder.fixed(model), ManualClock(datetime.now(UTC)))
    frame = simulate_frame(SimulationConfig(customers=400, merchants=100, days=6, seed=34))
    laps = _laps(frame, WARMUP_LAPS + MEASURED_LAPS)

    def run(records: list[object]) -> int:
        events = 0
        for lo in range(0, len(records), BATCH):
            result = processor.process(records[lo : lo + BATCH])  # type: ignore[arg-type]
            events += result.counts.events
        return events

    tracemalloc.start()
    try:
        for records in laps[:WARMUP_LAPS]:
            run(records)
        gc.collect()
        held, done = [tracemalloc.get_traced_memory()[0]], [0]
        for records in laps[WARMUP_LAPS:]:
            done.append(done[-1] + run(records))
            gc.collect()
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
        keys = list(store.client.scan_iter(match=f"{settings.redis.namespace}:*", count=1000))  # type: ignore[attr-defined]
        if keys:
            store.client.delete(*keys)  # type: ignore[attr-defined]
    assert done[-1] >= 0.9 * sum(len(r) for r in laps[WARMUP_LAPS:]), "most events were not processed"
    slope = float(np.polyfit(np.asarray(done, dtype=float), np.asarray(held, dtype=float), 1)[0])
    growth = (held[-1] - held[0]) / done[-1]
    print(f"allocation growth: {slope:.2f} B/event (fit), {growth:.2f} B/event (end to end) over {done[-1]} events; "
          f"held {held[0] / 2**20:.1f} -> {held[-1] / 2**20:.1f} MiB")
    assert slope < LEAK_BYTES_PER_EVENT and growth < LEAK_BYTES_PER_EVENT, (
        f"allocations grow {slope:.1f} B per processed event (fit; {growth:.1f} end to end), bound "
        f"{LEAK_BYTES_PER_EVENT}: something is kept per event"
    )
