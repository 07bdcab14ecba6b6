"""A backtest's own names: Redis namespace bt-<run id>, topics backtest.<run id>.*, consumer group and transactional
id backtest.<run id>; and their removal at the end. Live keys, topics and offsets are never named, so never touched.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from fraudstream.errors import ConfigError, InfraError
from fraudstream.settings import Settings

log = logging.getLogger(__name__)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def isolated_settings(settings: Settings, run_id: str, *, partitions: int, batch_size: int) -> Settings:
    """The same settings with every name the pipeline writes replaced by the run's own."""
    prefix = f"backtest.{run_id}"
    isolated = settings.with_overrides(
        topics={
            "transactions": f"{prefix}.transactions",
            "labels": f"{prefix}.labels",
            "alerts": f"{prefix}.alerts",
            "scores": f"{prefix}.scores",
            "dlq": f"{prefix}.dlq",
            "late": f"{prefix}.late",
            "drift": f"{prefix}.drift",
            "partitions": partitions,
        },
        redis={"namespace": f"bt-{run_id}"},
        streamer={"consumer_group": prefix, "transactional_id": prefix, "poll_batch_size": batch_size},
    )
    live_topics = set(settings.topics.all_topics())
    if live_topics & set(isolated.topics.all_topics()) or isolated.redis.namespace == settings.redis.namespace:
        raise ConfigError(f"backtest run {run_id} would share names with the live pipeline; pick another run id")
    return isolated


def redis_keys(client: object, namespace: str) -> list[bytes]:
    """Every key of a namespace (SCAN, never KEYS)."""
    return list(client.scan_iter(match=f"{namespace}:*", count=1000))  # type: ignore[attr-defined]


def drop_redis_namespace(settings: Settings) -> int:
    """UNLINK every key of the run's namespace; returns how many."""
    import redis

    from state.redis_client import redis_client

    client = redis_client(settings)
    try:
        keys = redis_keys(client, settings.redis.namespace)
        for lo in range(0, len(keys), 1000):
            client.unlink(*keys[lo : lo + 1000])
        return len(keys)
    except redis.RedisError as exc:
        raise InfraError(f"cannot remove backtest keys {settings.redis.namespace}:* ({exc})") from None
    finally:
        client.close()


def drop_kafka_names(settings: Settings, groups: list[str]) -> None:
    """Delete the run's topics and consumer groups (errors logged: cleanup never hides the report)."""
    from confluent_kafka import KafkaException

    from fraudstream.infra.topics import admin_client

    admin = admin_client(settings)
    timeout = settings.kafka.request_timeout_s
    for name, future in admin.delete_topics(settings.topics.all_topics(), operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            log.debug("delete topic %s: %s", name, exc.args[0])
    if groups:
        for name, future in admin.delete_consumer_groups(groups, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                log.debug("delete group %s: %s", name, exc.args[0])
