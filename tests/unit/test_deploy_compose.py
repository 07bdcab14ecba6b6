"""docker-compose.yml is valid and consistent: no engine runs here, so we check it statically."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream.settings import build_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items() if k != "<<"}


def test_services_and_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "streamer", "trainer"} <= set(services)
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name} mounts undeclared volume {source}"
    assert "service_healthy" in str(services["streamer"]["depends_on"])
    assert services["trainer"].get("profiles") == ["train"], "the trainer is a one-shot job"
    assert "--appendonly" in services["redis"]["command"], "redis must persist its data"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = {k: re.sub(r"\$\{([A-Z_]+)[^}]*\}", "placeholder", v) for k, v in _env(service).items()}
        fraud = {k: v for k, v in env.items() if k.startswith("FRAUD_")}
        if not fraud:
            continue
        settings = build_settings(environ=fraud)  # raises ConfigError on an unknown or invalid name
        assert settings.kafka.bootstrap_servers == "kafka:9092", name
        assert settings.redis.url is not None


def test_registry_volume_shared_by_trainer_and_streamer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    streamer_mounts = {m.split(":")[0]: m for m in services["streamer"]["volumes"]}
    trainer_mounts = {m.split(":")[0]: m for m in services["trainer"]["volumes"]}
    assert "model-registry" in streamer_mounts and "model-registry" in trainer_mounts
    assert streamer_mounts["model-registry"].endswith(":ro")
    registry_path = _env(services["streamer"]).get("FRAUD_REGISTRY__PATH") or _env(services["topics"])[
        "FRAUD_REGISTRY__PATH"]
    assert trainer_mounts["model-registry"].split(":")[1] == registry_path


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ("fraudstream", "features", "state", "models", "training", "streamer", "bankbus", "backtest"):
        assert f"COPY {package} {package}" in dockerfile


def test_compose_kafka_matches_the_embedded_broker_version(compose: dict[str, Any]) -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{match.group(1)}"
