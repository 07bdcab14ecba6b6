"""Waiting for Kafka and Redis when a command starts: say at once what is down, retry on a schedule, stop at a bound.

A long-running command (the streamer, a backtest) calls `wait_for_dependencies` before it does any work. When
everything answers it returns at once and says nothing. Otherwise it logs one warning line per dependency that is
down, with the retry schedule and the bound, retries with a doubling delay, and raises InfraError (exit code 69)
naming what did not answer and what to check once the bound has passed. Without a bound it waits for as long as
it takes, which is what a supervised worker wants.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from fraudstream.errors import InfraError
from fraudstream.settings import Settings

log = logging.getLogger(__name__)

#: A probe returns None when its dependency answers, else the reason in a few words; it takes a timeout in seconds.
Probe = Callable[[float], str | None]

#: The shortest wait for one probe: a broker that is up answers metadata well within it.
MIN_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts: first_s, doubling, at most max_s."""

    first_s: float = 0.5
    max_s: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)

    def describe(self) -> str:
        return f"retrying after {self.first_s:g} s, doubling up to every {self.max_s:g} s"


@dataclass(frozen=True)
class Dependency:
    name: str  # 'Kafka at host:port', 'Redis at redis://host:port/0'
    hint: str  # what to check when it does not answer
    probe: Probe


def kafka_dependency(settings: Settings) -> Dependency:
    from fraudstream.boundary import KAFKA_HINT

    def probe(timeout_s: float) -> str | None:
        from fraudstream.infra.topics import admin_client

        try:
            admin_client(settings).list_topics(timeout=min(timeout_s, settings.kafka.request_timeout_s))
        except Exception as exc:  # noqa: BLE001 - any failure to answer is "down"; the reason is reported
            error = exc.args[0] if exc.args else exc
            return str(error.str() if hasattr(error, "str") else error)
        return None

    return Dependency(f"Kafka at {settings.bootstrap_servers}", KAFKA_HINT, probe)


def redis_dependency(settings: Settings) -> Dependency:
    from fraudstream.boundary import REDIS_HINT

    def probe(timeout_s: float) -> str | None:
        import redis

        timeout = min(timeout_s, settings.redis.socket_timeout_s)
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        except redis.RedisError as exc:
            return str(exc) or type(exc).__name__
        finally:
            client.close()
        return None

    return Dependency(f"Redis at {settings.safe_summary()['redis']['url']}", REDIS_HINT, probe)


def dependencies(settings: Settings, *, kafka: bool = True, redis: bool = True) -> list[Dependency]:
    return ([kafka_dependency(settings)] if kafka else []) + ([redis_dependency(settings)] if redis else [])


def _bound_text(bound_s: float | None, bound_name: str) -> str:
    if bound_s is None:
        return f"waiting without end (bound it with {bound_name})"
    return f"giving up after {bound_s:g} s ({bound_name})"


def wait_for_dependencies(
    deps: list[Dependency],
    *,
    bound_s: float | None,
    bound_name: str,
    schedule: RetrySchedule | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every dependency answers; InfraError once `bound_s` has passed (None: no bound)."""
    schedule = schedule or RetrySchedule()
    started = clock()
    delays = schedule.delays()
    delay = next(delays)
    warned: set[str] = set()
    while True:
        remaining = None if bound_s is None else bound_s - (clock() - started)
        timeout = max(MIN_PROBE_TIMEOUT_S, delay)  # the bound limits the waiting, not one attempt below the minimum
        if remaining is not None:
            timeout = max(MIN_PROBE_TIMEOUT_S, min(timeout, remaining))
        down: Mapping[str, str] = {dep.name: reason for dep in deps if (reason := dep.probe(timeout)) is not None}
        if not down:
            if warned:
                log.warning("%s answering now; starting", " and ".join(dep.name for dep in deps))
            return
        for dep in deps:
            if dep.name in down and dep.name not in warned and (bound_s is None or bound_s > 0):
                log.warning(
                    "%s does not answer (%s); %s, %s; %s",
                    dep.name, down[dep.name], schedule.describe(), _bound_text(bound_s, bound_name), dep.hint,
                )
                warned.add(dep.name)
        elapsed = clock() - started
        if bound_s is not None and elapsed >= bound_s:
            missing = [dep for dep in deps if dep.name in down]
            waited = f"within {bound_s:g} s ({bound_name})" if bound_s > 0 else f"(not waiting: {bound_name} is 0)"
            raise InfraError(
                f"{' and '.join(dep.name for dep in missing)} did not answer {waited}: "
                f"{'; '.join(down[dep.name].rstrip('.') for dep in missing)}; "
                f"{'; '.join(dict.fromkeys(dep.hint for dep in missing))}"
            )
        pause = delay if bound_s is None else max(min(delay, bound_s - elapsed), 0.0)
        log.info("still waiting for %s; next attempt in %.1f s", " and ".join(down), pause)
        sleep(pause)
        delay = next(delays)
