"""Reading the alerts topic without touching any consumer group: assign(), read_committed, no commits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition
from pydantic import ValidationError

from fraudstream.contracts import Alert
from fraudstream.errors import InfraError
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

log = logging.getLogger(__name__)


def read_alerts(settings: Settings, *, follow: bool, from_beginning: bool, poll_s: float = 0.5) -> Iterator[Alert]:
    """Alerts in partition order; without follow, stops once every partition's end is reached."""
    from fraudstream.infra.topics import partition_count

    topic = settings.topics.alerts
    partitions = partition_count(settings, topic)
    consumer = Consumer(
        consumer_config(
            settings,
            f"fraudstream-tail-{uuid.uuid4().hex[:8]}",  # throwaway: assign() only, nothing is committed
            **{"enable.partition.eof": True, "enable.auto.offset.store": False},
        )
    )
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    at_end: set[int] = set()
    try:
        while follow or len(at_end) < partitions:
            for message in consumer.consume(num_messages=500, timeout=poll_s):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(int(message.partition() or 0))
                        continue
                    raise InfraError(f"cannot read {topic}: {error.str()}")
                at_end.discard(int(message.partition() or 0))
                try:
                    yield Alert.model_validate_json(message.value() or b"")
                except ValidationError as exc:
                    log.warning(
                        "skipping a malformed alert at %s[%s]@%s: %s",
                        topic,
                        message.partition(),
                        message.offset(),
                        exc.errors()[0]["msg"],
                    )
    finally:
        consumer.close()


def format_alert(alert: Alert) -> str:
    """One readable line: time, user, amount, merchant, score/threshold, version, top reasons."""
    txn = alert.transaction
    reasons = "; ".join(reason.text for reason in alert.reasons) or "no reasons"
    return (
        f"{txn.timestamp:%Y-%m-%d %H:%M:%S}Z  user {txn.user_id}  {txn.amount:,.2f} {txn.currency}  "
        f"at {txn.merchant_id}  score {alert.score:.3f}/{alert.threshold:.3f}  model {alert.model_version}  "
        f"txn {txn.transaction_id}  | {reasons}"
    )
