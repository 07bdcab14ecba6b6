"""`up`, `down` and `status` of the whole stack: embedded Kafka and Redis, or external ones by configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis as redis_lib

from fraudstream.errors import InfraError
from fraudstream.infra import kafka_embedded, redis_embedded
from fraudstream.infra.processes import wait_until
from fraudstream.infra.topics import check_reachable, ensure_topics
from fraudstream.settings import Settings


@dataclass
class StackReport:
    lines: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def say(self, line: str) -> None:
        """Record a line, and show it at once when an echo is set (so a failure later still shows progress)."""
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)


def ping_redis(settings: Settings, timeout_s: float = 2.0) -> bool:
    client = redis_lib.Redis.from_url(settings.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis_lib.RedisError:
        return False
    finally:
        client.close()


def up(settings: Settings, create_topics: bool = True, echo: Callable[[str], None] | None = None) -> StackReport:
    """Start what is embedded and not running, wait until both answer, create the topics. Idempotent."""
    report = StackReport(echo=echo)
    if settings.uses_embedded_kafka:
        if kafka_embedded.start(settings):
            report.started.append("kafka")
            report.say(f"kafka: started embedded broker on {settings.bootstrap_servers} "
                       f"(pid {kafka_embedded.running_pid(settings)})")
        else:
            report.say(f"kafka: embedded broker already running on {settings.bootstrap_servers}")
    else:
        report.say(f"kafka: external cluster {settings.bootstrap_servers}, nothing started")
    if settings.uses_embedded_redis:
        if redis_embedded.start(settings):
            report.started.append("redis")
            report.say(f"redis: started redis-server on 127.0.0.1:{settings.embedded.redis_port} "
                       f"(pid {redis_embedded.running_pid(settings)})")
        else:
            report.say(f"redis: redis-server already running on 127.0.0.1:{settings.embedded.redis_port}")
    else:
        report.say(f"redis: external {settings.safe_summary()['redis']['url']}, nothing started")
    brokers = check_reachable(settings, timeout_s=settings.embedded.start_timeout_s)
    report.say(f"kafka: {brokers} broker(s) answering")
    if not wait_until(lambda: ping_redis(settings), settings.embedded.start_timeout_s / 4):  # AOF may be loading
        raise InfraError(f"cannot reach Redis at {settings.safe_summary()['redis']['url']}; check FRAUD_REDIS__URL "
                         "or run `fraudstream up`")
    report.say("redis: answering PING")
    if create_topics:
        for topic, outcome in ensure_topics(settings).items():
            report.say(f"topic {topic}: {outcome}")
    return report


def down(settings: Settings) -> StackReport:
    """Stop only the processes we started (by their pid files)."""
    report = StackReport()
    for name, module in (("kafka", kafka_embedded), ("redis", redis_embedded)):
        stopped = module.stop(settings)
        report.say(f"{name}: {'stopped' if stopped else 'not running (nothing of ours to stop)'}")
    return report


def status(settings: Settings) -> tuple[StackReport, bool]:
    """What runs and what answers. The flag is True when both Kafka and Redis answer."""
    report = StackReport()
    if settings.uses_embedded_kafka:
        pid = kafka_embedded.running_pid(settings)
        report.say(f"kafka: embedded, {'running pid ' + str(pid) if pid else 'not running'}")
    else:
        report.say(f"kafka: external {settings.bootstrap_servers}")
    try:
        check_reachable(settings, timeout_s=min(3.0, settings.kafka.request_timeout_s))
        kafka_ok = True
        report.say(f"kafka: answering on {settings.bootstrap_servers}")
    except InfraError as exc:
        kafka_ok = False
        report.say(f"kafka: NOT answering ({exc})")
    if settings.uses_embedded_redis:
        pid = redis_embedded.running_pid(settings)
        report.say(f"redis: embedded, {'running pid ' + str(pid) if pid else 'not running'}")
    else:
        report.say("redis: external")
    redis_ok = ping_redis(settings)
    url = settings.safe_summary()["redis"]["url"]
    report.say(f"redis: answering at {url}" if redis_ok else f"redis: NOT answering at {url}; check FRAUD_REDIS__URL "
               "or run `fraudstream up`")
    return report, kafka_ok and redis_ok
