"""Where a NEW consumer group starts: a deliberate choice (`fraudstream stream --from earliest|latest|TIME`).

A group with committed offsets resumes from them, whatever --from says (a warning says --from is ignored). A group
without any (a first deployment, a renamed FRAUD_STREAMER__CONSUMER_GROUP) gets its start offsets committed here,
before the worker joins, per topic it reads:

- latest (the default): the current end of each partition; nothing published before is scored or alerted again;
- earliest: the start of each partition: all the history still in the topic is scored again, and every alert it
  raised before is emitted to the alerts topic again, so this warns first with the count;
- TIME (ISO 8601, e.g. 2024-02-10T00:00:00Z): the first record whose Kafka timestamp is at or after TIME (the end
  where none is); it warns like earliest when that re-reads records.

The kafka engine reads `transactions` as group G and `labels` as G.labels; the faust engine reads both as its app
id. The offsets are committed with a consumer that never joins the group (the group has no member yet).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from fraudstream.errors import InfraError, InputError
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

log = logging.getLogger(__name__)

EARLIEST, LATEST = "earliest", "latest"
DEFAULT = LATEST


@dataclass(frozen=True)
class StartPosition:
    kind: str  # earliest | latest | time
    at: datetime | None = None

    def __str__(self) -> str:
        return self.kind if self.at is None else f"{self.at.isoformat()}"


@dataclass(frozen=True)
class Placement:
    group: str
    topic: str
    new: bool
    offsets: dict[int, int]  # partition -> the offset the group starts at (new) or resumes from
    rereads: int  # records already in the topic that the group will read (new groups only)


def parse_start(text: str) -> StartPosition:
    """earliest, latest, or an ISO 8601 time (UTC when it has no offset)."""
    value = text.strip().lower()
    if value in (EARLIEST, LATEST):
        return StartPosition(value)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"--from '{text}' is not earliest, latest or a time like 2024-02-10T00:00:00Z") from None
    return StartPosition("time", at if at.tzinfo else at.replace(tzinfo=UTC))


def groups_and_topics(settings: Settings, engine: str) -> list[tuple[str, str]]:
    """(group, topic) pairs the engine reads."""
    topics = settings.topics
    if engine == "faust":
        from streamer.faust_config import faust_app_id

        group = faust_app_id(settings)
        return [(group, topics.transactions), (group, topics.labels)]
    group = settings.streamer.consumer_group
    return [(group, topics.transactions), (f"{group}.labels", topics.labels)]


def place(settings: Settings, group: str, topic: str, start: StartPosition) -> Placement:
    """Commit the start offsets of `group` on `topic` if it has none; say where it starts or resumes."""
    from fraudstream.infra.topics import partition_count

    timeout = settings.kafka.request_timeout_s
    consumer = Consumer(consumer_config(settings, group))
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count(settings, topic))]
        try:
            committed = _committed(consumer, partitions, timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or error.code() != KafkaError._TIMED_OUT:
                raise
            # read_committed asks for stable offsets: they wait while a transaction of the group is pending (a
            # worker killed mid-interval; our own producer aborts it when it starts), so the group is not new
            log.warning("consumer group %s has a transaction pending on %s; it resumes from its committed offsets "
                        "once that transaction is aborted", group, topic)
            return Placement(group, topic, False, {}, 0)
        if any(tp.offset >= 0 for tp in committed):
            return Placement(group, topic, False, {tp.partition: tp.offset for tp in committed}, 0)
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout) for tp in partitions}
        if start.kind == EARLIEST:
            offsets = {p: low for p, (low, _high) in ends.items()}
        elif start.kind == LATEST:
            offsets = {p: high for p, (_low, high) in ends.items()}
        else:
            assert start.at is not None
            stamp = int(start.at.timestamp() * 1000)
            found = consumer.offsets_for_times([TopicPartition(topic, p, stamp) for p in ends], timeout=timeout)
            offsets = {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition][1] for tp in found}
        try:
            consumer.commit(offsets=[TopicPartition(topic, p, off) for p, off in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            if not _group_is_active(exc):
                raise
            # another worker of the group joined first (its first commit still to come): the group is not new
            log.info("consumer group %s already has members on %s; this worker joins them", group, topic)
            return Placement(group, topic, False, {}, 0)
        rereads = sum(max(ends[p][1] - off, 0) for p, off in offsets.items())
        return Placement(group, topic, True, offsets, rereads)
    except KafkaException as exc:
        raise InfraError(
            f"cannot place consumer group {group} on {topic} at {settings.bootstrap_servers}: {exc.args[0]}"
        ) from None
    finally:
        consumer.close()


#: Coordinator errors of a broker still creating __consumer_offsets or loading a group: retried.
_RETRIABLE = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
              KafkaError._TIMED_OUT}


#: What the broker answers a commit from outside the group while the group has members.
_ACTIVE_GROUP = {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS,
                 KafkaError.FENCED_INSTANCE_ID}


def _group_is_active(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in _ACTIVE_GROUP


def _committed(consumer: Consumer, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
    """consumer.committed(), retried (0.2 s doubling to 2 s) for up to 3 x timeout while the coordinator settles."""
    deadline, delay = time.monotonic() + 3 * timeout, 0.2
    while True:
        try:
            return list(consumer.committed(partitions, timeout=timeout))
        except KafkaException as exc:
            error = exc.args[0]
            if not isinstance(error, KafkaError) or error.code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            log.debug("group coordinator not ready (%s); retrying in %.1f s", error.str(), delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def place_groups(settings: Settings, engine: str, start: StartPosition | None) -> list[Placement]:
    """Place every group the engine uses and log (warn for a re-read of history) where each starts."""
    chosen = start or StartPosition(DEFAULT)
    placements = [place(settings, group, topic, chosen) for group, topic in groups_and_topics(settings, engine)]
    for p in placements:
        if not p.new:
            if start is not None:
                log.warning("consumer group %s has committed offsets on %s: it resumes from them and --from %s is "
                            "ignored (use a new FRAUD_STREAMER__CONSUMER_GROUP to start elsewhere)", p.group, p.topic,
                            start)
            else:
                log.info("consumer group %s resumes %s from its committed offsets", p.group, p.topic)
        elif p.rereads and p.topic == settings.topics.transactions:
            log.warning(
                "consumer group %s is new and starts %s at %s: it re-reads %s records already there; they are scored "
                "again and every alert they raised before is emitted to %s again (use --from latest to start at the "
                "end)", p.group, p.topic, chosen, f"{p.rereads:,}", settings.topics.alerts,
            )
        else:
            log.info("consumer group %s is new and starts %s at %s (%s records to read)", p.group, p.topic, chosen,
                     f"{p.rereads:,}")
    return placements
