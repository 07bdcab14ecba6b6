"""Publish, labels and replay against the real test broker."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from bankbus.frames import read_canonical, transaction_records, write_canonical
from bankbus.pacing import Pacing
from bankbus.publisher import outbox_for, send
from bankbus.replay import REPLAY_GROUP_PREFIX, replay_topic
from bankbus.simulator import SimulationConfig, simulate_frame
from fraudstream.contracts import RECORD_TYPE_HEADER, SCHEMA_VERSION, SCHEMA_VERSION_HEADER, Label, Transaction
from fraudstream.errors import InfraError
from fraudstream.infra.topics import ensure_topics
from fraudstream.kafka_config import client_config, consumer_config
from fraudstream.settings import Settings
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.integration
PARTITIONS = 3


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate_frame(SimulationConfig(customers=150, merchants=60, days=6, seed=5))


def read_all(settings: Settings, topic: str) -> list[Message]:
    """Every record of the topic, from the start to the high watermark of each partition (no group, no commits)."""
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex}", **{"enable.auto.offset.store": False}))
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        open_parts = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in open_parts])
        records: list[Message] = []
        while open_parts:
            for msg in consumer.consume(1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                records.append(msg)
                if msg.offset() + 1 >= ends[msg.partition()]:
                    open_parts.discard(msg.partition())
        return records
    finally:
        consumer.close()


def publish(settings: Settings, frame: pd.DataFrame, topic: str, **kw: object) -> int:
    ensure_topics(settings, [topic, *([kw["labels_topic"]] if kw.get("labels_topic") else [])], PARTITIONS)
    report = send(settings, outbox_for(frame, topic, **kw), Pacing())  # type: ignore[arg-type]
    return report.delivered


def test_published_file_reads_back_equal(stack_settings: Settings, unique_name: str, frame: pd.DataFrame,
                                         tmp_path: Path) -> None:
    path = write_canonical(frame, tmp_path / "sim.parquet")
    assert publish(stack_settings, read_canonical(path), unique_name) == len(frame)
    records = read_all(stack_settings, unique_name)
    assert len(records) == len(frame)
    expected = {r["transaction_id"]: Transaction.model_validate(r) for r in transaction_records(frame)}
    got = {}
    for msg in records:
        txn = Transaction.model_validate_json(msg.value())
        got[txn.transaction_id] = txn
        assert msg.key() == txn.user_id.encode()
        assert dict(msg.headers()) == {SCHEMA_VERSION_HEADER: SCHEMA_VERSION.encode(),
                                       RECORD_TYPE_HEADER: b"transaction"}
        assert msg.timestamp()[1] == int(txn.timestamp.timestamp() * 1000)
    assert got == expected
    for partition in range(PARTITIONS):  # one user's events stay in event-time order on their partition
        stamps = [m.timestamp()[1] for m in records if m.partition() == partition]
        assert stamps == sorted(stamps)


def test_labels_follow_after_the_delay(stack_settings: Settings, unique_name: str, frame: pd.DataFrame) -> None:
    labels_topic = f"{unique_name}-labels"
    delivered = publish(stack_settings, frame, unique_name, labels_topic=labels_topic, labels_delay=timedelta(days=3))
    assert delivered == 2 * len(frame)
    labels = read_all(stack_settings, labels_topic)
    assert len(labels) == len(frame)
    truth = frame.set_index("transaction_id")
    for msg in labels:
        label = Label.model_validate_json(msg.value())
        row = truth.loc[label.transaction_id]
        assert label.is_fraud == bool(row["is_fraud"]) and label.merchant_id == row["merchant_id"]
        assert label.transaction_timestamp == row["timestamp"].to_pydatetime()
        assert label.labelled_at - label.transaction_timestamp == timedelta(days=3)
        assert msg.timestamp()[1] == int(label.labelled_at.timestamp() * 1000)
        assert dict(msg.headers())[RECORD_TYPE_HEADER] == b"label"


def _commit_live(settings: Settings, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings, group))
    offsets = [TopicPartition(topic, p, 7 + p) for p in range(PARTITIONS)]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    return _committed(settings, group, topic)


def _committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings, group))
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        consumer.close()


def test_replayed_range_is_exact_and_live_group_untouched(stack_settings: Settings, unique_name: str,
                                                          frame: pd.DataFrame) -> None:
    publish(stack_settings, frame, unique_name)
    live_group = f"{unique_name}-live"
    before = _commit_live(stack_settings, live_group, unique_name)
    assert before == {p: 7 + p for p in range(PARTITIONS)}
    start, end = pd.Timestamp("2024-01-02T06:30:00Z"), pd.Timestamp("2024-01-04T12:00:00Z")
    replay_to = f"{unique_name}-replay"
    report = replay_topic(stack_settings, unique_name, start.to_pydatetime(), end.to_pydatetime(), replay_to, Pacing())
    wanted = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]
    assert report.delivered == len(wanted) > 0
    replayed = read_all(stack_settings, replay_to)
    ids = [Transaction.model_validate_json(m.value()).transaction_id for m in replayed]
    assert sorted(ids) == sorted(wanted["transaction_id"])
    source_partition = {Transaction.model_validate_json(m.value()).transaction_id: m.partition()
                        for m in read_all(stack_settings, unique_name)}
    assert all(source_partition[i] == m.partition() for i, m in zip(ids, replayed, strict=True))
    assert _committed(stack_settings, live_group, unique_name) == before
    admin = AdminClient(client_config(stack_settings))
    groups = admin.list_consumer_groups().result(timeout=10)
    assert not [g.group_id for g in groups.valid if g.group_id.startswith(REPLAY_GROUP_PREFIX)]


def test_cli_publish_then_replay_file(stack_settings: Settings, unique_name: str, frame: pd.DataFrame,
                                      tmp_path: Path) -> None:
    path = write_canonical(frame.iloc[:500], tmp_path / "part.csv")
    env = {"FRAUD_KAFKA__BOOTSTRAP_SERVERS": stack_settings.bootstrap_servers}
    result = run_cli("publish", str(path), "--topic", unique_name, "--rate", "5000", env=env)
    assert result.code == 0, result.err
    assert "500 messages acknowledged" in result.out
    assert len(read_all(stack_settings, unique_name)) == 500
    result = run_cli("replay", str(path), "--to-topic", f"{unique_name}-r", "--speed", "1e9", env=env)
    assert result.code == 0, result.err
    assert len(read_all(stack_settings, f"{unique_name}-r")) == 500
    refused = run_cli("replay", str(path), "--to-topic", stack_settings.topics.transactions, env=env)
    assert refused.code == 2 and "separate topic" in refused.err and len(refused.err.strip().splitlines()) == 1


def test_unacknowledged_publish_fails_loudly(stack_settings: Settings, unique_name: str, frame: pd.DataFrame) -> None:
    outbox = outbox_for(frame.iloc[:50], f"{unique_name}-never-created")  # the broker does not auto-create
    with pytest.raises(InfraError, match="only 0 of 50 messages were acknowledged"):
        send(stack_settings, outbox, Pacing(), flush_timeout_s=20, **{"message.timeout.ms": 2000})
