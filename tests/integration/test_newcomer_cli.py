"""A new user's CLI against the real test broker: a new group's start position and its warning, `dlq tail` and
`late tail` with their reasons, and `label` refusing an ambiguous transaction id."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from fraudstream.contracts import Alert, Transaction
from fraudstream.infra.topics import ensure_topics
from fraudstream.kafka_config import consumer_config, producer_config
from fraudstream.settings import Settings
from streamer.core import LATE_REASON_HEADER, RawRecord
from streamer.start_position import StartPosition, parse_start, place_groups
from streamer.validation import DecodeFailure, dead_letter
from tests.cli_helpers import run_cli
from tests.streamer_process import env_for

pytestmark = pytest.mark.integration


def _own(stack_settings: Settings, name: str, partitions: int = 2) -> Settings:
    topics = {t: f"{name}-{t}" for t in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    settings = stack_settings.with_overrides(
        topics={**topics, "partitions": partitions}, redis={"namespace": name[-30:]},
        streamer={"consumer_group": f"{name}-group"},
    )
    ensure_topics(settings)
    return settings


#: key, value, headers, partition (None: by key)
Message = tuple[bytes, bytes, list[tuple[str, str | bytes | None]], int | None]


def _produce(settings: Settings, topic: str, messages: list[Message]) -> None:
    producer = Producer(producer_config(settings))
    for key, value, headers, partition in messages:
        if partition is None:
            producer.produce(topic, value, key, headers=headers)
        else:
            producer.produce(topic, value, key, partition=partition, headers=headers)
    assert producer.flush(20) == 0


def _committed(settings: Settings, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings, group))
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def _txn(txn_id: str, user: str, minute: int = 0) -> Transaction:
    return Transaction(transaction_id=txn_id, user_id=user, timestamp=datetime(2024, 2, 10, 12, minute, tzinfo=UTC),
                       amount=12.5, merchant_id="M0000001")


def test_a_new_group_starts_where_asked_and_warns_before_re_reading_history(
    stack_settings: Settings, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _own(stack_settings, unique_name)
    topic = settings.topics.transactions
    _produce(settings, topic, [(b"C1", _txn(f"T{i}", "C1").model_dump_json().encode(), [], i % 2) for i in range(6)])
    caplog.set_level(logging.INFO, logger="streamer.start_position")

    place_groups(settings, "kafka", None)  # the default: latest, nothing re-read, no warning
    assert _committed(settings, settings.streamer.consumer_group, topic) == {0: 3, 1: 3}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"starts {topic} at latest (0 records to read)" in caplog.text

    caplog.clear()  # the same group again: it resumes, and an explicit --from is ignored with a warning
    place_groups(settings, "kafka", parse_start("earliest"))
    assert _committed(settings, settings.streamer.consumer_group, topic) == {0: 3, 1: 3}
    assert "has committed offsets on" in caplog.text and "--from earliest is ignored" in caplog.text

    caplog.clear()  # a new group from earliest re-reads the history, and says so first with the count
    fresh = settings.with_overrides(streamer={"consumer_group": f"{unique_name}-again"})
    place_groups(fresh, "kafka", parse_start("earliest"))
    assert _committed(fresh, f"{unique_name}-again", topic) == {0: 0, 1: 0}
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "re-reads 6 records already there" in warning[0]
    assert f"emitted to {settings.topics.alerts} again" in warning[0] and "--from latest" in warning[0]
    assert _committed(fresh, f"{unique_name}-again.labels", settings.topics.labels) == {0: 0, 1: 0}

    future = settings.with_overrides(streamer={"consumer_group": f"{unique_name}-future"})
    place_groups(future, "kafka", StartPosition("time", datetime(2099, 1, 1, tzinfo=UTC)))
    assert _committed(future, f"{unique_name}-future", topic) == {0: 3, 1: 3}  # nothing that late: the end


def test_stream_from_refuses_a_bad_value_in_one_line() -> None:
    result = run_cli("stream", "--from", "yesterday", "--wait-timeout", "1", timeout=60)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1].startswith("fraudstream: error: --from 'yesterday' is not earliest")


def test_dlq_tail_and_late_tail_print_each_record_with_its_reason(stack_settings: Settings, unique_name: str) -> None:
    settings = _own(stack_settings, unique_name)
    bad = RawRecord(settings.topics.transactions, 1, 42, b"C7", b'{"amount": "12.5"', [])
    letter = dead_letter(bad, DecodeFailure("InvalidJson", "EOF while parsing an object"),
                         datetime(2026, 1, 1, tzinfo=UTC), settings.topics.dlq)
    late = _txn("T-late-1", "C8")
    _produce(settings, settings.topics.dlq, [(letter.key, letter.value, list(letter.headers), 0)])
    why = b"older than the user's latest event minus 3600 s"
    reason: list[tuple[str, str | bytes | None]] = [(LATE_REASON_HEADER, why)]
    _produce(settings, settings.topics.late, [(b"C8", late.model_dump_json().encode(), reason, 1)])
    env = env_for(settings)

    dlq = run_cli("dlq", "tail", env=env, timeout=60)
    assert dlq.code == 0, dlq.err
    lines = dlq.out.strip().splitlines()
    assert len(lines) == 1, dlq.out
    assert f"from {settings.topics.transactions}[1]@42" in lines[0] and "key C7" in lines[0]
    assert "invalid-json (InvalidJson): EOF while parsing an object" in lines[0]
    assert '{"amount": "12.5"' in lines[0]
    assert f"1 records in {settings.topics.dlq}" in dlq.err

    late_out = run_cli("late", "tail", "--limit", "5", env=env, timeout=60)
    assert late_out.code == 0, late_out.err
    (line,) = late_out.out.strip().splitlines()
    assert "event 2024-02-10 12:00:00Z  user C8  txn T-late-1  12.5 EUR" in line
    assert line.endswith("| older than the user's latest event minus 3600 s")


def _alert(txn: Transaction) -> bytes:
    alert = Alert.for_transaction(txn, score=0.9, threshold=0.5, model_version="v1", scorer="mlp", reasons=[],
                                  features={}, produced_at=datetime(2026, 1, 1, tzinfo=UTC))
    return alert.model_dump_json().encode()


def test_label_refuses_an_ambiguous_transaction_id_in_one_line(stack_settings: Settings, unique_name: str) -> None:
    settings = _own(stack_settings, unique_name)
    same_id = [_txn("T0000000463", "C0000001"), _txn("T0000000463", "C0000002", minute=5)]
    _produce(settings, settings.topics.alerts, [(t.user_id.encode(), _alert(t), [], None) for t in same_id])
    env = env_for(settings)

    refused = run_cli("label", "T0000000463", "fraud", env=env, timeout=60)
    assert refused.code == 2, refused.err
    assert refused.out == ""
    (line,) = refused.err.strip().splitlines()
    assert line == (f"fraudstream: error: transaction id T0000000463 is ambiguous: 2 different transactions in "
                    f"{settings.topics.alerts} carry it (users C0000001, C0000002); give --user to say which")

    chosen = run_cli("label", "T0000000463", "fraud", "--user", "C0000002", env=env, timeout=60)
    assert chosen.code == 0, chosen.err
    assert "published fraud for T0000000463 (user C0000002)" in chosen.out
