"""The Redis store's reads on a standalone server: the scoring API's peek is one MGET, no pipeline (fakeredis)."""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import Any

import fakeredis
import numpy as np

from features.config import FeatureConfig
from fraudstream.contracts import Transaction
from state.batch import SourceRecord
from state.memory import InMemoryFeatureStore
from state.redis_store import RedisFeatureStore
from tests.streamer_support import simulated_transactions

PARTITIONS = 4
CFG = FeatureConfig(label_delay_s=6 * 3600.0)


class CountingRedis(fakeredis.FakeRedis):
    """Counts the commands sent outside a pipeline, and the pipelines opened."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []
        self.pipelines = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]).upper())
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


def apply(store: InMemoryFeatureStore, history: list[Transaction]) -> None:
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    for lo in range(0, len(history), 40):
        records = []
        for txn in history[lo : lo + 40]:
            p = zlib.crc32(txn.user_id.encode()) % PARTITIONS
            records.append(SourceRecord(p, offsets[p], txn))
            offsets[p] += 1
        store.commit_batch(store.prepare_batch(records), [b"out"] * len(records))


def test_a_peek_on_a_standalone_redis_is_one_mget_and_equals_the_in_memory_peek() -> None:
    history = simulated_transactions(customers=20, merchants=12, days=2, seed=3)
    memory = InMemoryFeatureStore(CFG, "t", partitions=PARTITIONS)
    apply(memory, history)
    client = CountingRedis()  # the same state, byte for byte (fakeredis runs no Lua, so no commit through it)
    client.mset(dict(memory.strings))
    for key, fields in memory.hashes.items():
        client.hset(key, mapping={str(f): v for f, v in fields.items()})
    redis_store = RedisFeatureStore(client, "t", CFG, partitions=PARTITIONS)
    last = history[-1].timestamp
    events = [t.model_copy(update={"transaction_id": f"p-{k}", "timestamp": last + timedelta(minutes=k + 1)})
              for k, t in enumerate(history[-5:])]  # fmt: skip
    client.commands.clear()
    client.pipelines = 0
    peeked = redis_store.peek(events)
    assert client.commands == ["MGET"] and client.pipelines == 0, (client.commands, client.pipelines)
    expected = memory.peek(events)
    np.testing.assert_array_equal(peeked.vectors, expected.vectors)
    np.testing.assert_array_equal(peeked.late, expected.late)
