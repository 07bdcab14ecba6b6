"""Backtests against the real broker and redis-server: fast and Kafka modes give identical scores; live Redis keys
and live committed offsets are byte-for-byte untouched; the run's own names are removed afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtest.job import run_backtest
from backtest.runner import BacktestOptions
from fraudstream.settings import Settings
from tests.streamer_support import publish_tiny_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Simulated traffic (canonical frame) with every 40th amount made large, so the tiny model alerts."""
    from bankbus.frames import write_canonical
    from bankbus.simulator import SimulationConfig, simulate_frame

    frame = simulate_frame(SimulationConfig(customers=80, merchants=40, days=6, seed=5))
    big = np.arange(len(frame)) % 40 == 7
    frame.loc[big, "amount"] = 4000.0
    frame.loc[big, "is_fraud"] = 1
    frame.loc[big & (frame["fraud_scenario"] == 0), "fraud_scenario"] = -1
    return write_canonical(frame, tmp_path_factory.mktemp("bt") / "history.parquet")


def _options(
    tmp_path: Path, history: Path, registry: Path, version: str, *, fast: bool, state: str = "redis"
) -> BacktestOptions:
    return BacktestOptions(
        report_dir=tmp_path / (("fast" if fast else "kafka") + ("-memory" if state == "memory" else "")),
        history=history,
        model=version,
        registry=registry,
        label_delay_days=1.0,
        fast=fast,
        state=state,
        batch_size=700,
        partitions=3,
    )


def _live_settings(stack_settings: Settings, unique_name: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return stack_settings.with_overrides(
        topics={name: f"{unique_name}.{name}" for name in ("transactions", "labels", "alerts", "scores", "dlq")},
        redis={"namespace": f"live-{tag}"},
        streamer={"consumer_group": f"{unique_name}.live", "scorer": "stack"},
    )


def test_fast_and_kafka_modes_give_identical_scores(
    stack_settings: Settings, unique_name: str, tmp_path: Path, history_file: Path
) -> None:
    registry = tmp_path / "registry"
    version = publish_tiny_model(registry, threshold=0.5)
    settings = _live_settings(stack_settings, unique_name)
    fast, _ = run_backtest(settings, _options(tmp_path, history_file, registry, version, fast=True))
    kafka, _ = run_backtest(settings, _options(tmp_path, history_file, registry, version, fast=False))
    a = pd.read_parquet(tmp_path / "fast" / "scores.parquet")
    b = pd.read_parquet(tmp_path / "kafka" / "scores.parquet")
    assert len(a) == len(b) == fast["coverage"]["assessed"] and fast["coverage"]["missing"] == 0
    assert a["alerted"].sum() > 0 and a["label"].sum() > 0
    assert fast["replay"][0]["labels"] > 0 and kafka["replay"][0]["labels"] == fast["replay"][0]["labels"]
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # same rows, same order, bit-identical scores
    assert kafka["run"]["mode"] == "kafka" and fast["run"]["mode"] == "fast"
    # the fast replay on the in-memory store (--state memory): the same core over dicts, the same scores
    memory, _ = run_backtest(settings, _options(tmp_path, history_file, registry, version, fast=True, state="memory"))
    c = pd.read_parquet(tmp_path / "fast-memory" / "scores.parquet")
    pd.testing.assert_frame_equal(a, c, check_exact=True)
    assert memory["replay"][0]["labels"] == fast["replay"][0]["labels"] and memory["run"]["state"] == "memory"


def _dump_namespace(client: Any, namespace: str) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in client.scan_iter(match=f"{namespace}:*", count=1000)}


def _committed(settings: Settings, group: str, topic: str) -> list[tuple[int, int]]:
    from confluent_kafka import Consumer, TopicPartition

    from fraudstream.kafka_config import consumer_config

    consumer = Consumer(consumer_config(settings, group))
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        return [(tp.partition, tp.offset) for tp in consumer.committed(parts, timeout=10.0)]
    finally:
        consumer.close()


def _make_live_state(settings: Settings, history: Path, tmp_path: Path) -> None:
    """A live namespace with real feature-store keys, and a live group with committed offsets on the live topic."""
    from confluent_kafka import Consumer, Producer

    from backtest.events import EventStream
    from backtest.inputs import load_history
    from features.config import FeatureConfig
    from fraudstream.clock import SystemClock
    from fraudstream.infra.topics import ensure_topics
    from fraudstream.kafka_config import consumer_config, producer_config
    from models.registry import ModelRegistry
    from state.redis_client import redis_client
    from state.redis_store import RedisFeatureStore
    from streamer.core import StreamProcessor
    from streamer.scoring import ModelHolder

    frame = load_history(history).frame.head(300)
    stream = EventStream(frame, pd.Timedelta(days=1), settings.topics)
    records = stream.records(0, len(stream))
    store = RedisFeatureStore(redis_client(settings), settings.redis.namespace, FeatureConfig(), partitions=6)
    version = publish_tiny_model(tmp_path / "live-registry")
    model = ModelRegistry(tmp_path / "live-registry", allow_unsigned=True).load(version)
    StreamProcessor(settings, store, ModelHolder.fixed(model), SystemClock()).process(records)
    ensure_topics(settings, [settings.topics.transactions], settings.topics.partitions)
    producer = Producer(producer_config(settings))
    for r in records[:60]:
        producer.produce(settings.topics.transactions, value=r.value, key=r.key, partition=r.partition % 6)
    producer.flush(30)
    consumer = Consumer(consumer_config(settings, settings.streamer.consumer_group))
    consumer.subscribe([settings.topics.transactions])
    seen = 0
    while seen < 30:
        seen += len([m for m in consumer.consume(10, timeout=1.0) if m.error() is None])
    consumer.commit(asynchronous=False)
    consumer.close()


def test_live_keys_and_offsets_are_untouched_and_run_names_removed(
    stack_settings: Settings, unique_name: str, tmp_path: Path, history_file: Path
) -> None:
    from fraudstream.infra.topics import admin_client
    from state.redis_client import redis_client

    settings = _live_settings(stack_settings, unique_name)
    _make_live_state(settings, history_file, tmp_path)
    client = redis_client(settings)
    live_topic, group = settings.topics.transactions, settings.streamer.consumer_group
    keys_before = _dump_namespace(client, settings.redis.namespace)
    offsets_before = _committed(settings, group, live_topic)
    assert len(keys_before) > 50 and any(offset > 0 for _, offset in offsets_before)

    registry = tmp_path / "registry"
    version = publish_tiny_model(registry)
    report, _ = run_backtest(settings, _options(tmp_path, history_file, registry, version, fast=False))

    assert _dump_namespace(client, settings.redis.namespace) == keys_before
    assert _committed(settings, group, live_topic) == offsets_before
    run_id = report["run"]["run_id"]
    assert not list(client.scan_iter(match=f"bt-{run_id}:*"))
    topics = admin_client(settings).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(f"backtest.{run_id}.")]
    assert report["run"]["cleanup"]["redis_keys"] > 0
    client.close()


def test_topic_range_input_scores_like_the_file_it_was_published_from(
    stack_settings: Settings, unique_name: str, tmp_path: Path, history_file: Path
) -> None:
    from datetime import timedelta

    from bankbus.frames import read_canonical
    from bankbus.pacing import Pacing
    from bankbus.publisher import outbox_for, send
    from fraudstream.infra.topics import ensure_topics

    settings = _live_settings(stack_settings, unique_name)
    frame = read_canonical(history_file)
    ensure_topics(settings, [settings.topics.transactions, settings.topics.labels], settings.topics.partitions)
    outbox = outbox_for(frame, settings.topics.transactions, settings.topics.labels, timedelta(days=1))
    send(settings, outbox, Pacing())
    registry = tmp_path / "registry"
    version = publish_tiny_model(registry)
    from_file, _ = run_backtest(settings, _options(tmp_path, history_file, registry, version, fast=True))
    start = frame["timestamp"].min().to_pydatetime()
    end = frame["timestamp"].max().to_pydatetime() + timedelta(seconds=1)
    topic_opts = BacktestOptions(
        report_dir=tmp_path / "topic",
        from_topic=True,
        start=start,
        end=end,
        model=version,
        registry=registry,
        label_delay_days=1.0,
        fast=True,
        batch_size=700,
        partitions=3,
    )
    from_topic, _ = run_backtest(settings, topic_opts)
    # events of the same instant may come back from Kafka in another order: compare per transaction
    a = pd.read_parquet(tmp_path / "fast" / "scores.parquet").sort_values("transaction_id", ignore_index=True)
    b = pd.read_parquet(tmp_path / "topic" / "scores.parquet").sort_values("transaction_id", ignore_index=True)
    assert from_topic["data"]["frauds"] == from_file["data"]["frauds"] > 0
    pd.testing.assert_frame_equal(a, b, check_exact=True)
