"""The store's read-only path (`peek`, used by the scoring API): the stream's features for an event, nothing changed."""

from __future__ import annotations

import zlib
from datetime import timedelta

import numpy as np
import pytest

from features.config import FeatureConfig
from features.spec import FEATURE_NAMES, MERCHANT_NAMES
from fraudstream.contracts import Transaction
from state.batch import SourceRecord
from state.memory import InMemoryFeatureStore
from tests.streamer_support import simulated_transactions

PARTITIONS = 3
#: A short label delay, so that the delayed merchant windows hold something over three days of history.
CFG = FeatureConfig(label_delay_s=6 * 3600.0)


def partition_of(txn: Transaction) -> int:
    return zlib.crc32(txn.user_id.encode()) % PARTITIONS


def snapshot(store: InMemoryFeatureStore) -> dict[str, object]:
    return {**dict(store.strings), **{k: dict(v) for k, v in store.hashes.items()}}


@pytest.fixture(scope="module")
def history() -> list[Transaction]:
    return simulated_transactions(customers=30, merchants=12, days=3, seed=4)


def streamed(history: list[Transaction]) -> tuple[InMemoryFeatureStore, dict[int, int]]:
    """A store that applied the whole history through prepare_batch/commit_batch in uneven batches."""
    store = InMemoryFeatureStore(CFG, partitions=PARTITIONS)
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    rng = np.random.default_rng(0)
    i = 0
    while i < len(history):
        size = int(rng.integers(1, 60))
        records = []
        for txn in history[i : i + size]:
            p = partition_of(txn)
            records.append(SourceRecord(p, offsets[p], txn))
            offsets[p] += 1
        batch = store.prepare_batch(records)
        store.commit_batch(batch, [b"out"] * len(records))
        i += size
    return store, offsets


def new_events(history: list[Transaction], count: int) -> list[Transaction]:
    last = history[-1].timestamp
    users = list(dict.fromkeys(t.user_id for t in reversed(history)))[:count]
    base = {t.user_id: t for t in history}
    return [
        base[u].model_copy(update={"transaction_id": f"new-{k}", "timestamp": last + timedelta(minutes=k + 1),
                                   "amount": 10.0 + 97.5 * k})
        for k, u in enumerate(users)
    ]


def test_peek_equals_what_the_stream_computes_next_and_changes_nothing(history: list[Transaction]) -> None:
    store, offsets = streamed(history)
    events = new_events(history, 8)
    before = snapshot(store)
    peeked = store.peek(events)
    assert snapshot(store) == before, "peek wrote to the backend"
    assert peeked.vectors.shape[0] == len(events) and not peeked.late.any()
    for k, txn in enumerate(events):  # the stream then applies each event alone, against the same state
        fresh = InMemoryFeatureStore(CFG, partitions=PARTITIONS)
        fresh.strings, fresh.hashes = dict(store.strings), {h: dict(v) for h, v in store.hashes.items()}
        p = partition_of(txn)
        batch = fresh.prepare_batch([SourceRecord(p, offsets[p], txn)])
        assert not batch.replayed[0] and not batch.late[0]
        np.testing.assert_array_equal(peeked.vectors[k], batch.vectors[0])
    merchant = peeked.vectors[:, [FEATURE_NAMES.index(n) for n in MERCHANT_NAMES]]
    assert (merchant > 0).any(), "the merchant side read nothing: the test would not see it differ"


def test_each_event_is_read_against_the_stored_state_alone(history: list[Transaction]) -> None:
    store, _ = streamed(history)
    one = new_events(history, 1)[0]
    later = one.model_copy(update={"transaction_id": "new-later", "timestamp": one.timestamp + timedelta(seconds=30)})
    both = store.peek([one, later])
    np.testing.assert_array_equal(both.vectors[0], store.peek([one]).vectors[0])
    np.testing.assert_array_equal(both.vectors[1], store.peek([later]).vectors[0])


def test_a_late_event_is_flagged_and_a_new_user_has_no_history(history: list[Transaction]) -> None:
    store, _ = streamed(history)
    user = history[-1].user_id
    stale = history[-1].model_copy(update={"transaction_id": "stale", "timestamp": history[-1].timestamp
                                           - timedelta(days=2)})  # fmt: skip
    newcomer = history[-1].model_copy(update={"transaction_id": "fresh", "user_id": f"{user}-never-seen"})
    out = store.peek([stale, newcomer])
    assert out.late.tolist() == [True, False]
    assert out.vectors[1, FEATURE_NAMES.index("first_transaction")] == 1.0


@pytest.mark.parametrize("change", [
    {}, {"latitude": None}, {"longitude": None, "latitude": None}, {"merchant_category": None}, {"channel": None},
    {"device_id": "dev-9"}, {"country": None}, {"amount": 0.005}, {"amount": 1234.565},
    {"latitude": -33.8688195, "longitude": 151.2092955},
])  # fmt: skip
def test_the_one_row_columns_equal_columns_of(history: list[Transaction], change: dict[str, object]) -> None:
    """peek's one-row path builds a batch of one from fields_of; every column equals columns_of's, dtype too."""
    from features.fields import TxnColumns, columns_of
    from state.engine import one_row_columns

    base = history[-1]
    stamps = (base.timestamp, base.timestamp + timedelta(microseconds=999_999), base.timestamp.replace(microsecond=1))
    for when in stamps:
        txn = base.model_copy(update={**change, "timestamp": when})
        fast, batch = one_row_columns(txn), columns_of([txn])
        for name in TxnColumns.__dataclass_fields__:
            a, b = getattr(fast, name), getattr(batch, name)
            assert a.dtype == b.dtype and a.shape == b.shape == (1,) and a.tolist() == b.tolist(), name
