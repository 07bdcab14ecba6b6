"""Build a redis client from Settings (redis://, rediss:// and unix:// URLs; timeouts from settings)."""

from __future__ import annotations

import redis

from fraudstream.errors import ConfigError
from fraudstream.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the settings' Redis; with redis.cluster, a RedisCluster (same commands, slots followed)."""
    timeout = settings.redis.socket_timeout_s
    try:
        if settings.redis.cluster:
            from redis.cluster import RedisCluster

            cluster = RedisCluster.from_url(
                settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                require_full_coverage=True, cluster_error_retry_attempts=5,
            )
            return cluster  # type: ignore[return-value]  # the same command API (redis.commands.RedisClusterCommands)
        return redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
    except ValueError as exc:
        raise ConfigError(f"FRAUD_REDIS__URL cannot be used: {exc}") from None
