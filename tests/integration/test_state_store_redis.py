"""The FeatureStore cases against the real redis-server, plus the 100k-event online/offline parity."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from features.config import FeatureConfig
from features.offline import build_features
from features.spec import FEATURE_NAMES
from fraudstream.errors import StateStoreError
from fraudstream.settings import Settings
from state.batch import SourceRecord
from state.redis_client import redis_client
from state.redis_store import RedisFeatureStore
from tests.feature_streams import fraud_labels, synthetic_stream, txn
from tests.state_store_cases import *  # noqa: F403
from tests.store_replay import max_relative_gap, stream_through_store

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stack_settings: Settings) -> Iterator[redis.Redis]:
    c = redis_client(stack_settings)
    yield c
    c.close()


@pytest.fixture
def store_factory(client: redis.Redis, unique_name: str) -> Iterator[Callable[..., RedisFeatureStore]]:
    yield lambda: RedisFeatureStore(client, unique_name, FeatureConfig())
    for key in client.scan_iter(match=f"{unique_name}:*", count=1000):
        client.delete(key)


@pytest.fixture
def snapshot(client: redis.Redis, unique_name: str) -> Callable[[RedisFeatureStore], dict[bytes, object]]:
    def take(store: RedisFeatureStore) -> dict[bytes, object]:
        found: dict[bytes, object] = {}
        for key in sorted(client.scan_iter(match=f"{unique_name}:*", count=1000)):
            found[key] = client.get(key) if client.type(key) == b"string" else client.hgetall(key)
        return found

    return take


def test_keys_carry_ttl_and_partition_hash_tag(
    store_factory: Callable[..., RedisFeatureStore], client: redis.Redis, unique_name: str
) -> None:
    store = store_factory()
    store.commit_batch(store.prepare_batch([SourceRecord(4, 0, txn())]), [b"out"])
    keys = sorted(client.scan_iter(match=f"{unique_name}:*"))
    assert keys and all(b"{t4}" in k for k in keys)
    assert all(0 < client.ttl(k) <= store.ttl_s for k in keys)


def test_redis_down_is_a_state_store_error(unique_name: str) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    store = RedisFeatureStore(dead, unique_name, FeatureConfig())
    with pytest.raises(StateStoreError, match="retry"):
        store.prepare_batch([SourceRecord(0, 0, txn())])


@pytest.mark.slow
def test_parity_100k_events_through_redis(
    store_factory: Callable[..., RedisFeatureStore], record_property: Callable[[str, object], None]
) -> None:
    cfg = FeatureConfig()
    frame = synthetic_stream(100_000, users=3000, merchants=400, days=45)
    labels = fraud_labels(frame, cfg.label_delay_s)
    store = store_factory()
    online, events_per_s = stream_through_store(store, frame, labels, batch_size=500)
    offline = build_features(frame, labels, cfg)
    assert len(online) == len(offline) == 100_000
    gap = max_relative_gap(offline, online, list(FEATURE_NAMES))
    report = store.memory_report()
    record_property("online_events_per_s", round(events_per_s))
    record_property("bytes_per_user_mean", report.get("bytes_per_user_mean"))
    print(f"parity: max relative gap {gap:.3g}; online {events_per_s:.0f} events/s; memory {report}")
    assert gap <= 1e-9
    delivered = int((labels["labelled_at"] <= frame["timestamp"].max()).sum())
    assert store.counters["labels_applied"] >= delivered > 0
    assert (offline["merchant_risk_7d"] > 0).sum() > 1000
