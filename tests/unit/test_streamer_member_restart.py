"""The kafka engine restarts a member whose partitions wait with no committed progress (streamer/recovery.py), and
only then: new consumers subscribed again, a new producer, nothing decided while the broker does not answer."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from fraudstream.settings import build_settings
from streamer import kafka_engine
from streamer.kafka_engine import KafkaEngine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine() -> KafkaEngine:
    settings = build_settings({"kafka": {"bootstrap_servers": "127.0.0.1:9"},
                               "streamer": {"processing_guarantee": "at_least_once", "recovery_timeout_s": 20.0}},
                              environ={})
    built = KafkaEngine(settings, processor=None)  # type: ignore[arg-type]  # no batch is processed here
    clock = Clock()
    built.stall_watch.clock = clock
    built.stall_watch.reset()
    built._test_clock = clock  # type: ignore[attr-defined]
    return built


def _answers(monkeypatch: pytest.MonkeyPatch, replies: list[Any]) -> None:
    def progress(_consumer: object, _topic: str) -> Any:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(kafka_engine, "group_progress", progress)


def test_a_member_owning_a_stuck_partition_restarts_with_new_consumers(engine: KafkaEngine,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clock: Clock = engine._test_clock  # type: ignore[attr-defined]
    topic = engine.settings.topics.transactions
    engine._assigned = {(topic, 0), (topic, 1)}
    old_consumer, old_output = engine.consumer, engine.output._producer  # type: ignore[attr-defined]
    down = KafkaException(KafkaError(KafkaError._TRANSPORT))
    _answers(monkeypatch, [down, ({0: 5, 1: 9}, {0: 50, 1: 9}), down, ({0: 5, 1: 9}, {0: 60, 1: 9}),
                           ({0: 5, 1: 9}, {0: 70, 1: 9})])
    clock.now = 2.0
    engine._check_stall()  # the broker does not answer: nothing decided
    clock.now = 4.0
    engine._check_stall()  # partition 0 waits from now on
    clock.now = 12.0
    engine._check_stall()
    clock.now = 13.9
    engine._check_stall()  # 9.9 s: not yet (half of the 20 s recovery timeout)
    assert engine.member_restarts == 0 and engine.consumer is old_consumer
    clock.now = 14.0
    engine._check_stall()
    assert engine.member_restarts == 1
    assert engine.consumer is not old_consumer and engine.checkpoints.consumer is engine.consumer
    assert engine.output._producer is not old_output  # type: ignore[attr-defined]
    assert engine._assigned == set()
    engine.close()


def test_a_member_whose_partitions_move_or_that_owns_others_is_left_alone(engine: KafkaEngine,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clock: Clock = engine._test_clock  # type: ignore[attr-defined]
    topic = engine.settings.topics.transactions
    engine._assigned = {(topic, 1)}  # partition 0 belongs to another member: its own watch restarts it
    _answers(monkeypatch, [({0: 5, 1: 9}, {0: 50, 1: 20}), ({0: 5, 1: 10}, {0: 50, 1: 20}),
                           ({0: 5, 1: 11}, {0: 50, 1: 20})])
    for now in (2.0, 8.0, 16.0):
        clock.now = now
        engine._check_stall()
    assert engine.member_restarts == 0
    engine.close()
