"""The per-process state cache never serves a record another writer or an expiry has changed."""

from __future__ import annotations

from datetime import timedelta

from features.config import FeatureConfig
from features.spec import FEATURE_INDEX
from state.batch import SourceRecord
from state.memory import InMemoryFeatureStore
from tests.feature_streams import START, txn


def _pair() -> tuple[InMemoryFeatureStore, InMemoryFeatureStore]:
    a, b = InMemoryFeatureStore(FeatureConfig()), InMemoryFeatureStore(FeatureConfig())
    b.strings, b.hashes = a.strings, a.hashes  # two workers on one backend
    return a, b


def _run(store: InMemoryFeatureStore, partition: int, offset: int, hours: float, merchant: str = "m1") -> list[float]:
    batch = store.prepare_batch(
        [SourceRecord(partition, offset, txn(when=START + timedelta(hours=hours), merchant=merchant))]
    )
    store.commit_batch(batch, [None])
    return [float(v) for v in batch.vectors[0]]


def test_a_partition_written_by_another_worker_is_read_again() -> None:
    a, b = _pair()
    _run(a, 0, 0, 0)
    _run(b, 0, 1, 1)  # the partition moved to b, then back to a
    assert _run(a, 0, 2, 2)[FEATURE_INDEX["count_1d"]] == 3.0


def test_other_partitions_merchant_records_follow_their_offsets() -> None:
    a, b = _pair()
    _run(a, 0, 0, 0)  # a caches m1's (empty) records of partition 1
    for i in range(3):
        _run(b, 1, i, 1 + i)  # b owns partition 1: three m1 transactions
    day8 = _run(a, 0, 1, 8 * 24 + 5)
    assert day8[FEATURE_INDEX["merchant_count_30d"]] == 4.0


def test_expired_keys_are_not_served_from_the_cache() -> None:
    store = InMemoryFeatureStore(FeatureConfig())
    now = [1000.0]
    store.monotonic = lambda: now[0]
    _run(store, 0, 0, 0)
    assert _run(store, 0, 1, 1)[FEATURE_INDEX["first_transaction"]] == 0.0
    user_keys = [k for k in store.strings if ":u:" in k]
    for key in user_keys:  # what Redis does once the TTL has run out
        del store.strings[key]
    now[0] += store.ttl_s
    assert _run(store, 0, 2, 2)[FEATURE_INDEX["first_transaction"]] == 1.0


def test_cache_hits_give_the_same_vectors_as_cold_reads() -> None:
    warm, cold = InMemoryFeatureStore(FeatureConfig()), InMemoryFeatureStore(FeatureConfig())
    rows_warm, rows_cold = [], []
    for i in range(12):
        rows_warm.append(_run(warm, i % 2, i // 2, i * 30, merchant=f"m{i % 3}"))
        rows_cold.append(_run(cold, i % 2, i // 2, i * 30, merchant=f"m{i % 3}"))
        cold.cache.clear()
    assert rows_warm == rows_cold
    assert warm.cache.hits > 0
