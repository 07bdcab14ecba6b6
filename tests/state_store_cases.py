"""FeatureStore behaviour, run against every implementation (a `store_factory` fixture picks which)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest

from features.config import FeatureConfig
from features.offline import build_features
from features.spec import FEATURE_INDEX, FEATURE_NAMES
from fraudstream.contracts import Label, LabelSource
from fraudstream.errors import StateStoreError
from state.batch import LabelRecord, SourceRecord
from state.engine import KeyValueFeatureStore
from tests.feature_streams import START, fraud_labels, synthetic_stream, txn
from tests.store_replay import max_relative_gap, stream_through_store

StoreFactory = Callable[..., KeyValueFeatureStore]
CFG = FeatureConfig()


def records(partition: int, first_offset: int, count: int, user: str = "u1") -> list[SourceRecord]:
    return [
        SourceRecord(
            partition,
            first_offset + i,
            txn(user=user, when=START + timedelta(hours=first_offset + i), amount=10.0 + i, merchant=f"m{i % 3}"),
        )
        for i in range(count)
    ]


def test_prepare_and_commit_fold_in_order(store_factory: StoreFactory, snapshot: Callable[..., dict]) -> None:
    store = store_factory()
    batch = store.prepare_batch(records(0, 0, 4))
    assert snapshot(store) == {}  # prepare writes nothing
    assert batch.vectors.shape == (4, len(FEATURE_NAMES))
    assert batch.vectors[:, FEATURE_INDEX["count_1d"]].tolist() == [1.0, 2.0, 3.0, 4.0]
    store.commit_batch(batch, [b"a", b"b", b"c", b"d"])
    state = store.user_state("u1")
    assert state is not None and state.n_total == 4 and state.last_cents == 1300
    nxt = store.prepare_batch(records(0, 4, 1))
    assert nxt.vectors[0, FEATURE_INDEX["count_1d"]] == 5.0 and not nxt.replayed.any()
    assert store.user_state("nobody") is None


def test_replaying_a_batch_leaves_state_as_once(store_factory: StoreFactory, snapshot: Callable[..., dict]) -> None:
    once, twice = store_factory(), store_factory()
    first, second = records(2, 0, 5), records(2, 5, 5)
    for store in (once, twice):
        store.commit_batch(store.prepare_batch(first), [r.txn.transaction_id.encode() for r in first])
    # crash after the Redis write, before the Kafka commit: the same batch comes again
    replay = twice.prepare_batch(first)
    assert replay.replayed.all() and np.isnan(replay.vectors).all()
    assert replay.cached_outputs == [r.txn.transaction_id.encode() for r in first]
    twice.commit_batch(replay, [b"different"] * 5)
    assert snapshot(twice) == snapshot(once)
    # a re-poll that straddles applied and new records applies only the new ones
    straddle = twice.prepare_batch(first[3:] + second)
    assert straddle.replayed.tolist() == [True, True] + [False] * 5
    twice.commit_batch(straddle, [None, None] + [r.txn.transaction_id.encode() for r in second])
    once.commit_batch(once.prepare_batch(second), [r.txn.transaction_id.encode() for r in second])
    assert snapshot(twice) == snapshot(once)


def test_the_previous_batch_outputs_stay_cached_for_one_more_commit(store_factory: StoreFactory) -> None:
    store = store_factory()
    first, second, third = records(1, 0, 3), records(1, 3, 3), records(1, 6, 3)

    def outputs(batch: list[SourceRecord]) -> list[bytes | None]:
        return [r.txn.transaction_id.encode() for r in batch]

    store.commit_batch(store.prepare_batch(first), outputs(first))
    store.commit_batch(store.prepare_batch(second), outputs(second))
    # the first batch's Kafka transaction may still be in flight and abort: both batches replay from the cache
    assert store.prepare_batch(first + second).cached_outputs == outputs(first) + outputs(second)
    store.commit_batch(store.prepare_batch(third), outputs(third))
    assert store.prepare_batch(second).cached_outputs == outputs(second)
    assert store.prepare_batch(first).cached_outputs == [None, None, None]  # committed two batches ago: dropped
    # a restarted worker (nothing in flight) keeps only from its first batch on ...
    fresh = store_factory()
    replay = fresh.prepare_batch(third)  # ... and a batch of replays alone counts as a batch: its outputs are
    fresh.commit_batch(replay, [None, None, None])  # going out again in the transaction now in flight
    fourth = records(1, 9, 2)
    fresh.commit_batch(fresh.prepare_batch(fourth), outputs(fourth))
    assert fresh.prepare_batch(third).cached_outputs == outputs(third)
    fifth = records(1, 11, 2)
    fresh.commit_batch(fresh.prepare_batch(fifth), outputs(fifth))
    assert fresh.prepare_batch(third).cached_outputs == [None, None, None]


def test_outputs_stay_cached_back_to_the_start_of_the_uncommitted_transaction(store_factory: StoreFactory) -> None:
    store = store_factory()
    batches = [records(1, 3 * i, 3) for i in range(6)]

    def outputs(batch: list[SourceRecord]) -> list[bytes | None]:
        return [r.txn.transaction_id.encode() for r in batch]

    store.commit_batch(store.prepare_batch(batches[0]), outputs(batches[0]))
    # one Kafka transaction spans batches 1..3 (a commit interval): the engine says where it began
    store.keep_outputs_from({1: batches[1][0].offset})
    for batch in batches[1:4]:
        store.commit_batch(store.prepare_batch(batch), outputs(batch))
    # it aborts, or the worker is killed: every batch of the interval replays from the cache, identically
    interval = [r for batch in batches[1:4] for r in batch]
    replay = store.prepare_batch(interval)
    assert replay.replayed.all() and replay.cached_outputs == outputs(interval)
    # once it committed, the engine holds nothing back: the older outputs go with the next commits
    store.keep_outputs_from({})
    for batch in batches[4:]:
        store.commit_batch(store.prepare_batch(batch), outputs(batch))
    assert store.prepare_batch(batches[4]).cached_outputs == outputs(batches[4])
    assert store.prepare_batch(batches[3]).cached_outputs == [None, None, None]


def test_fenced_writer_is_refused_and_writes_nothing(
    store_factory: StoreFactory, snapshot: Callable[..., dict]
) -> None:
    live, zombie = store_factory(), store_factory()
    batch = records(1, 0, 3)
    zombie_batch = zombie.prepare_batch(batch)
    live.commit_batch(live.prepare_batch(batch), [b"x"] * 3)
    before = snapshot(live)
    with pytest.raises(StateStoreError, match="fenced"):
        zombie.commit_batch(zombie_batch, [b"y"] * 3)
    assert snapshot(live) == before


def test_late_events_are_flagged_not_folded(store_factory: StoreFactory) -> None:
    store = store_factory()
    on_time = SourceRecord(0, 0, txn(when=START + timedelta(days=1)))
    late = SourceRecord(0, 1, txn(when=START, amount=500.0))
    batch = store.prepare_batch([on_time, late])
    assert batch.late.tolist() == [False, True] and np.isfinite(batch.vectors).all()
    store.commit_batch(batch, [None, None])
    state = store.user_state("u1")
    assert state is not None and state.n_total == 1
    assert store.counters["late_events"] == 1


def label(tid: str, merchant: str | None, when_txn: object, known: object) -> Label:
    return Label(
        transaction_id=tid,
        user_id="u1",
        is_fraud=True,
        source=LabelSource.chargeback,
        labelled_at=known,
        merchant_id=merchant,
        transaction_timestamp=when_txn,
    )


def test_labels_are_idempotent_and_feed_delayed_risk(
    store_factory: StoreFactory, snapshot: Callable[..., dict]
) -> None:
    store = store_factory()
    fraud_time = START
    txns = [SourceRecord(0, 0, txn(when=fraud_time, merchant="shop", transaction_id="f1"))]
    store.commit_batch(store.prepare_batch(txns), [None])
    labels = [
        LabelRecord(3, 0, label("f1", "shop", fraud_time, fraud_time + timedelta(days=2))),
        LabelRecord(3, 1, label("f9", None, None, fraud_time + timedelta(days=2))),  # not usable for risk
    ]
    assert store.apply_labels(labels) == 1
    after_once = snapshot(store)
    assert store.apply_labels(labels) == 0
    assert snapshot(store) == after_once
    assert store.counters["labels_unusable"] == 1 and store.counters["labels_replayed"] == 2
    probe = store.prepare_batch(
        [SourceRecord(1, 0, txn(user="u2", when=fraud_time + timedelta(days=7, hours=1), merchant="shop"))]
    )
    assert probe.vectors[0, FEATURE_INDEX["merchant_count_1d"]] == 1.0
    assert probe.vectors[0, FEATURE_INDEX["merchant_risk_1d"]] == 1.0


def test_store_matches_offline_builder(store_factory: StoreFactory) -> None:
    frame = synthetic_stream(3000, users=80, merchants=30, days=20)
    labels = fraud_labels(frame, CFG.label_delay_s)
    online, _ = stream_through_store(store_factory(), frame, labels, batch_size=97)
    offline = build_features(frame, labels, CFG)
    assert max_relative_gap(offline, online, list(FEATURE_NAMES)) <= 1e-9


def test_memory_report_measures_users(store_factory: StoreFactory) -> None:
    store = store_factory()
    batch = records(0, 0, 3) + records(1, 0, 2, user="u2")
    store.commit_batch(store.prepare_batch(batch), [None] * 5)
    report = store.memory_report()
    assert report["users_measured"] == 2 and 20 < report["bytes_per_user_mean"] < 1024


def test_a_transaction_id_applied_before_is_a_duplicate(store_factory: StoreFactory) -> None:
    store = store_factory()
    batch = records(0, 0, 3)
    store.commit_batch(store.prepare_batch(batch), [None] * 3)
    resent = [SourceRecord(0, 3, batch[1].txn), SourceRecord(0, 4, txn(user="u1", when=START + timedelta(days=2)))]
    prepared = store.prepare_batch(resent)
    assert prepared.duplicate_of == ["0@1", None]
    assert np.isnan(prepared.vectors[0]).all() and np.isfinite(prepared.vectors[1]).all()
    store.commit_batch(prepared, [b"dup", b"ok"])
    state = store.user_state("u1")
    assert state is not None and state.n_total == 4 and store.counters["duplicate_events"] == 1
    assert store.prepare_batch(resent).replayed.all()  # the offset guard still sees a replay, not a duplicate


def _count_reads(store: KeyValueFeatureStore) -> list[int]:
    """Count the store's reads of the backend (each one round trip on Redis): offsets alone, or records (with the
    offsets or not)."""
    reads = [0]
    offsets, load_ttls = store._offsets, store._load_with_ttls

    def counted_offsets(*args: object) -> object:
        reads[0] += 1
        return offsets(*args)  # type: ignore[arg-type]

    def counted_load_ttls(*args: object) -> object:
        reads[0] += 1
        return load_ttls(*args)  # type: ignore[arg-type]

    store._offsets = counted_offsets  # type: ignore[method-assign,assignment]
    store._load_with_ttls = counted_load_ttls  # type: ignore[method-assign,assignment]
    return reads


def test_a_batch_reads_offsets_and_records_in_one_round_trip_while_no_one_else_writes(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    store.commit_batch(store.prepare_batch(records(0, 0, 3)), [b"a", b"b", b"c"])
    reads = _count_reads(store)
    batch = store.prepare_batch(records(0, 3, 3))
    assert reads[0] == 1  # offsets as the cache expects them: no second read
    assert batch.vectors[:, FEATURE_INDEX["count_1d"]].tolist() == [4.0, 5.0, 6.0]


def test_a_partition_moved_by_another_writer_is_read_again_before_folding(store_factory: StoreFactory) -> None:
    ours, theirs = store_factory(), store_factory()  # two writers of one backend (one namespace)
    ours.commit_batch(ours.prepare_batch(records(0, 0, 3)), [b"a", b"b", b"c"])
    theirs.commit_batch(theirs.prepare_batch(records(0, 3, 2)), [b"d", b"e"])  # the partition moved past our cache
    reads = _count_reads(ours)
    batch = ours.prepare_batch(records(0, 5, 1))
    assert reads[0] >= 2  # the first read found the offset moved: planned again on it
    assert batch.vectors[0, FEATURE_INDEX["count_1d"]] == 6.0  # their two events counted, not a stale cached state
    assert not batch.replayed.any()
