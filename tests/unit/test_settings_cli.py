"""Bad configuration ends with one clear line and a non-zero exit; secrets never appear in output."""

from __future__ import annotations

import json

import pytest

from fraudstream.errors import ConfigError
from fraudstream.settings import build_settings
from tests.cli_helpers import run_cli


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FRAUD_REDIS__URL": "http://example:6379"}, "invalid setting FRAUD_REDIS__URL"),
        ({"FRAUD_REDIS__URL": "redis://host:notaport/0"}, "invalid setting FRAUD_REDIS__URL"),
        ({"FRAUD_KAFKA__BOOTSTRAP_SERVERS": "broker-without-port"}, "invalid setting FRAUD_KAFKA__BOOTSTRAP_SERVERS"),
        ({"FRAUD_TOPICS__PARTITIONS": "-3"}, "invalid setting FRAUD_TOPICS__PARTITIONS"),
        ({"FRAUD_TOPICS__PARTITONS": "3"}, "unknown setting FRAUD_TOPICS__PARTITONS"),
        ({"FRAUD_STREAMER__ENGINE": "spark"}, "invalid setting FRAUD_STREAMER__ENGINE"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(env: dict[str, str], expected: str) -> None:
    result = run_cli("config", env=env, timeout=60)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("fraudstream: error: ")
    assert expected in lines[0]


def test_config_masks_secrets() -> None:
    env = {
        "FRAUD_REDIS__URL": "rediss://user:hunter2@redis.bank:6380/1",
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
        "FRAUD_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUD_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUD_KAFKA__SASL_USERNAME": "svc-fraud",
        "FRAUD_KAFKA__SASL_PASSWORD": "s3cr3t-pw",
        "FRAUD_STREAMER__USER_ID_HMAC_KEY": "pepper-key",
    }
    result = run_cli("config", "--json", env=env, timeout=60)
    assert result.code == 0, result.err
    for secret in ("hunter2", "s3cr3t-pw", "pepper-key"):
        assert secret not in result.out + result.err
    shown = json.loads(result.out)
    assert shown["redis"]["url"] == "rediss://user:**********@redis.bank:6380/1"
    assert shown["kafka"]["sasl_username"] == "svc-fraud"


def test_settings_are_frozen_and_sasl_passes_through() -> None:
    from fraudstream.kafka_config import consumer_config

    settings = build_settings(
        environ={
            "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "b1:9093",
            "FRAUD_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "FRAUD_KAFKA__SASL_MECHANISM": "PLAIN",
            "FRAUD_KAFKA__SASL_USERNAME": "u",
            "FRAUD_KAFKA__SASL_PASSWORD": "p",
        }
    )
    with pytest.raises(Exception, match="frozen"):
        settings.topics.partitions = 3  # type: ignore[misc]
    config = consumer_config(settings, "g")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "p"
    assert config["isolation.level"] == "read_committed"
    assert config["enable.auto.commit"] is False
    assert "p" not in repr(settings.kafka.sasl_password)


def test_with_overrides_validates() -> None:
    settings = build_settings(environ={})
    assert settings.with_overrides(topics={"partitions": 2}).topics.partitions == 2
    with pytest.raises(ConfigError, match="FRAUD_TOPICS__PARTITIONS"):
        settings.with_overrides(topics={"partitions": 0})
    with pytest.raises(ConfigError, match="unknown settings section"):
        settings.with_overrides(nope={"x": 1})


def test_environment_is_read_only_through_build_settings() -> None:
    settings = build_settings(environ={"FRAUD_TOPICS__PARTITIONS": "4"})
    assert settings.topics.partitions == 4
    assert build_settings(environ={}).topics.partitions == 6


def test_config_prints_the_environment_names_with_values_and_which_are_set() -> None:
    env = {"FRAUD_REDIS__URL": "rediss://user:hunter2@redis.bank:6380/1", "FRAUD_TOPICS__PARTITIONS": "3"}
    result = run_cli("config", env=env, timeout=60)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "FRAUD_TOPICS__PARTITIONS=3  # set" in lines
    assert "FRAUD_REDIS__URL=rediss://user:**********@redis.bank:6380/1  # set" in lines
    assert "FRAUD_STREAMER__CONSUMER_GROUP=fraudstream-streamer" in lines  # a default: not marked
    assert "FRAUD_REGISTRY__PATH=.fraudstream/registry" in lines
    assert "hunter2" not in result.out
    assert all(line.startswith("FRAUD_") and "=" in line for line in lines)
    names = {line.split("=", 1)[0] for line in lines}
    assert {"FRAUD_KAFKA__BOOTSTRAP_SERVERS", "FRAUD_EMBEDDED__KAFKA_PORT", "FRAUD_LOG_LEVEL"} <= names
    help_text = run_cli("config", "--help", timeout=60).out
    assert "FRAUD_*" in help_text and "environment name" in help_text
