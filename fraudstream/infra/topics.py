"""Topic creation with the AdminClient: missing topics are created, existing ones accepted."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from fraudstream.boundary import KAFKA_HINT
from fraudstream.errors import InfraError
from fraudstream.kafka_config import client_config
from fraudstream.settings import Settings


def _reason(exc: KafkaException) -> str:
    """librdkafka's text of the error ('Failed to get metadata: Local: Broker transport failure'), not its repr."""
    error = exc.args[0] if exc.args else None
    return str(error.str()) if isinstance(error, KafkaError) else str(exc)


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def check_reachable(settings: Settings, timeout_s: float | None = None) -> int:
    """Number of brokers answering; InfraError with one line when none answers in time."""
    timeout = settings.kafka.request_timeout_s if timeout_s is None else timeout_s
    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise InfraError(
            f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout:g} s ({_reason(exc)}); "
            "check FRAUD_KAFKA__BOOTSTRAP_SERVERS or run `fraudstream up`"
        ) from None
    return len(metadata.brokers)


def ensure_topics(
    settings: Settings, names: Iterable[str] | None = None, partitions: int | None = None
) -> dict[str, str]:
    """Create the named topics (default: every fraudstream topic). Returns {topic: 'created'|'exists'}."""
    wanted = list(names) if names is not None else settings.topics.all_topics()
    count = partitions or settings.topics.partitions
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics(timeout=settings.kafka.request_timeout_s).topics)
    except KafkaException as exc:
        raise InfraError(f"cannot list topics at {settings.bootstrap_servers}: {_reason(exc)}; {KAFKA_HINT}") from None
    result = {name: "exists" for name in wanted if name in existing}
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return result
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=count, replication_factor=settings.topics.replication_factor)
         for name in missing],
        operation_timeout=settings.kafka.request_timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result()
            result[name] = "created"
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                result[name] = "exists"
            else:
                raise InfraError(f"cannot create topic {name}: {error.str()}") from None
    return result


def partition_count(settings: Settings, topic: str) -> int:
    try:
        metadata = admin_client(settings).list_topics(topic=topic, timeout=settings.kafka.request_timeout_s)
    except KafkaException as exc:
        raise InfraError(
            f"cannot read the metadata of {topic} at {settings.bootstrap_servers}: {_reason(exc)}; {KAFKA_HINT}"
        ) from None
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise InfraError(f"topic {topic} does not exist at {settings.bootstrap_servers}; run `fraudstream up`")
    return len(info.partitions)
