"""Build a redis client from Settings (redis://, rediss:// and unix:// URLs; timeouts from settings)."""

from __future__ import annotations

import redis

from fraudstream.errors import ConfigError
from fraudstream.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    timeout = settings.redis.socket_timeout_s
    try:
        return redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
    except ValueError as exc:
        raise ConfigError(f"FRAUD_REDIS__URL cannot be used: {exc}") from None
