"""Verdicts from the security team: a Label built from the transaction's alert (or flags), published to `labels`."""

from __future__ import annotations

from datetime import UTC, datetime

from fraudstream.clock import Clock
from fraudstream.contracts import Label, LabelSource
from fraudstream.errors import InfraError, InputError
from fraudstream.settings import Settings
from streamer.outputs import contract_headers

NOTE_HEADER = "note"
#: Who gave the verdict (the console's analyst login), as a Kafka header beside the note.
ANALYST_HEADER = "analyst"


def build_label(
    settings: Settings,
    transaction_id: str,
    *,
    is_fraud: bool,
    source: LabelSource,
    user: str | None,
    merchant: str | None,
    at: datetime | None,
    clock: Clock,
) -> Label:
    """Fill user, merchant and transaction time from the alert of the transaction; flags fill what has no alert."""
    from streamer.alert_reader import read_alerts

    if user is None or merchant is None or at is None:
        matches = {}  # (user, merchant, time) -> the alert's transaction: re-emitted alerts of one are one
        for alert in read_alerts(settings, follow=False, from_beginning=True):
            txn = alert.transaction
            if txn.transaction_id == transaction_id and (user is None or txn.user_id == user):
                matches[(txn.user_id, txn.merchant_id, txn.timestamp)] = txn
        if len(matches) > 1:
            users = sorted({u for u, _m, _t in matches})
            raise InputError(
                f"transaction id {transaction_id} is ambiguous: {len(matches)} different transactions in "
                f"{settings.topics.alerts} carry it (users {', '.join(users)}); give --user"
                + (", --merchant and --at" if len(users) == 1 else "") + " to say which"
            )
        if matches:
            txn = next(iter(matches.values()))
            user, merchant, at = user or txn.user_id, merchant or txn.merchant_id, at or txn.timestamp
    if user is None:
        raise InputError(
            f"transaction {transaction_id} has no alert in {settings.topics.alerts}; give --user (and --merchant "
            "--at to feed merchant risk)"
        )
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Label(
        transaction_id=transaction_id,
        user_id=user,
        is_fraud=is_fraud,
        source=source,
        labelled_at=clock.now(),
        merchant_id=merchant,
        transaction_timestamp=at,
    )


def publish_label(settings: Settings, label: Label, *, note: str | None = None, analyst: str | None = None) -> None:
    """Publish and wait for the broker's acknowledgement (InfraError if it does not come).

    The note and the analyst's id travel as headers (`note`, `analyst`), not in the Label contract."""
    from confluent_kafka import KafkaError, Message, Producer

    from fraudstream.kafka_config import producer_config

    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error.str())

    headers = contract_headers("label") + ([(NOTE_HEADER, note.encode())] if note else [])
    if analyst:
        headers.append((ANALYST_HEADER, analyst.encode()))
    producer = Producer(producer_config(settings))
    producer.produce(
        settings.topics.labels,
        key=label.user_id.encode(),
        value=label.model_dump_json().encode(),
        headers=list[tuple[str, str | bytes | None]](headers),
        on_delivery=delivered,
    )
    remaining = producer.flush(settings.kafka.request_timeout_s)
    if remaining or failures:
        reason = failures[0] if failures else "no acknowledgement in time"
        raise InfraError(f"label not published to {settings.topics.labels}: {reason}")
