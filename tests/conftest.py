"""Shared fixtures. Integration tests get a Settings pointing at a REAL broker and redis-server.

The test stack is embedded (own state folder and ports, apart from the demo's) unless
FRAUD_KAFKA__BOOTSTRAP_SERVERS / FRAUD_REDIS__URL point at external servers. It is started on demand
(idempotent) and left running for other pytest processes; scripts/test.sh stops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudstream.settings import Settings, build_settings

REPO = Path(__file__).resolve().parents[1]
TEST_EMBEDDED = {
    "state_dir": str(REPO / ".fraudstream" / "test"),
    "kafka_port": 29092,
    "controller_port": 29093,
    "redis_port": 26379,
}


def make_test_settings(**sections: dict[str, object]) -> Settings:
    """Settings for tests: the environment's FRAUD_* values, the test stack's ports, and overrides."""
    embedded = {k: v for k, v in TEST_EMBEDDED.items() if f"FRAUD_EMBEDDED__{k.upper()}" not in os.environ}
    data: dict[str, dict[str, object]] = {"embedded": embedded}
    if "FRAUD_REGISTRY__SIGNING_KEY" not in os.environ:  # the tests' registries are unsigned (development)
        data["registry"] = {"allow_unsigned": True}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return build_settings(data)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    from fraudstream.infra.stack import up

    settings = make_test_settings()
    up(settings, create_topics=False)
    return settings


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for topics, consumer groups and Redis namespaces."""
    base = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_client(stack_settings: Settings) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(stack_settings.redis_url)
    yield client
    client.close()


def pytest_report_header(config: pytest.Config) -> str:
    settings = make_test_settings()
    redis_url = settings.safe_summary()["redis"]["url"]
    return f"fraudstream test stack: kafka {settings.bootstrap_servers}, redis {redis_url}"


_FAILURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note each failure's one-line reason: scripts/test.sh prints them last, for a CI log cut to its tail."""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1:]
        line = " ".join(str(reason).split())
        _FAILURES.append(f"{report.nodeid} ({report.when}): {line[:300]}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.rootpath / ".pytest_cache" / "failure_reasons.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in _FAILURES))
