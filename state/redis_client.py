"""Build a redis client from Settings (redis://, rediss:// and unix:// URLs; timeouts from settings), and the
backoff between retries when Redis fails."""

from __future__ import annotations

import random as _random
from collections.abc import Callable

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


class RetryBackoff:
    """Waits between Redis retries: exponential from first_s, capped at max_s, with full jitter.

    The n-th wait (n from 0) is drawn uniformly from [0, min(max_s, first_s * 2**n)) (AWS's "full jitter"): workers
    that lost Redis together do not come back in lock step, and no wait ever exceeds max_s, so a worker is idle at
    most max_s after Redis is back. `random` is injected (tests pass a fixed sequence).
    """

    def __init__(self, max_s: float, first_s: float = 0.1, random: Callable[[], float] = _random.random) -> None:
        if max_s <= 0 or first_s <= 0:
            raise ValueError("backoff times must be positive")
        self.max_s, self.first_s, self._random = max_s, first_s, random
        self.failures = 0

    def ceiling_s(self) -> float:
        """The bound of the next wait (before jitter)."""
        return min(self.max_s, self.first_s * 2.0 ** min(self.failures, 60))

    def next_s(self) -> float:
        """The next wait; counts a failure."""
        wait = self.ceiling_s() * self._random()
        self.failures += 1
        return wait

    def reset(self) -> None:
        """Redis answered: the next outage starts from first_s again."""
        self.failures = 0
