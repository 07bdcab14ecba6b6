"""Which transactions partitions the kafka engine counts as caught up for the event-time aligner: a partition that
has delivered nothing since it was assigned has no position, and its start offset stands in (a worker restarted
after a kill owns partitions whose every record is committed; they must not hold the others back)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from fraudstream.settings import build_settings
from streamer.kafka_engine import KafkaEngine


class Consumer:
    """The three calls _caught_up makes, answered from tables (partition -> offset)."""

    def __init__(self, positions: dict[int, int], watermarks: dict[int, tuple[int, int]],
                 committed: dict[int, int]) -> None:
        self.positions, self.watermarks, self.commits = positions, watermarks, committed
        self.committed_calls: list[int] = []

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in tps]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the hot path asks the cached watermarks only"
        return self.watermarks[tp.partition]

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.committed_calls += [tp.partition for tp in tps]
        return [TopicPartition(tp.topic, tp.partition, self.commits.get(tp.partition, OFFSET_INVALID)) for tp in tps]


@pytest.fixture
def engine() -> Iterator[KafkaEngine]:
    settings = build_settings({"kafka": {"bootstrap_servers": "127.0.0.1:9"},
                               "streamer": {"processing_guarantee": "at_least_once"}}, environ={})
    built = KafkaEngine(settings, processor=None)  # type: ignore[arg-type]  # no batch is processed here
    real = built.consumer
    yield built
    built.consumer = real
    built.close()


def test_a_partition_with_no_position_counts_from_its_committed_offset_or_its_low_watermark(
        engine: KafkaEngine) -> None:
    topic = engine.settings.topics.transactions
    fake = Consumer(
        positions={0: 40, 1: 35, 2: OFFSET_INVALID, 3: OFFSET_INVALID, 4: OFFSET_INVALID, 5: OFFSET_INVALID},
        watermarks={0: (0, 40), 1: (0, 40), 2: (0, 50), 3: (0, 50), 4: (7, 7), 5: (3, 9)},
        committed={2: 50, 3: 20})  # 4 and 5: nothing committed, so they start at their low watermark
    engine.consumer = fake  # type: ignore[assignment]
    assert engine._caught_up(topic, {0, 1, 2, 3, 4, 5}) == {0, 2, 4}
    assert sorted(fake.committed_calls) == [2, 3, 4, 5]
    engine._caught_up(topic, {0, 1, 2, 3, 4, 5})
    assert sorted(fake.committed_calls) == [2, 3, 4, 5], "the start offsets are asked once per assignment"
    engine._on_assign(fake, [TopicPartition(topic, 6)])  # type: ignore[arg-type]
    fake.positions[6], fake.watermarks[6] = OFFSET_INVALID, (0, 0)
    assert engine._caught_up(topic, {0, 1, 2, 3, 4, 5, 6}) == {0, 2, 4, 6}
    assert sorted(fake.committed_calls) == [2, 2, 3, 3, 4, 4, 5, 5, 6], "a new assignment asks again"


def test_no_partition_counts_while_the_broker_does_not_say(engine: KafkaEngine) -> None:
    topic = engine.settings.topics.transactions

    class Down(Consumer):
        def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    fake = Down(positions={0: OFFSET_INVALID, 1: OFFSET_INVALID}, watermarks={0: (0, 9), 1: (-1001, -1001)},
                committed={})
    engine.consumer = fake  # type: ignore[assignment]
    assert engine._caught_up(topic, {0, 1}) == set()
    plain = Consumer(positions=fake.positions, watermarks=fake.watermarks, committed={})
    engine.consumer = plain  # type: ignore[assignment]
    assert engine._caught_up(topic, {0, 1}) == set(), "no committed offset and no watermark yet: not caught up"
