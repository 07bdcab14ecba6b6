"""librdkafka configuration dictionaries built from settings (SASL/SSL passed through)."""

from __future__ import annotations

import logging
from typing import Any

from fraudstream.settings import Settings

LIBRDKAFKA_LOGGER = logging.getLogger("fraudstream.librdkafka")


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Options shared by producers, consumers and the admin client."""
    kafka = settings.kafka
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol,
        # librdkafka logs go through Python logging (not raw stderr); errors surface as exceptions.
        "logger": LIBRDKAFKA_LOGGER,
    }
    if kafka.sasl_mechanism:
        config["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        config["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_ca_location:
        config["ssl.ca.location"] = str(kafka.ssl_ca_location)
    if kafka.ssl_certificate_location:
        config["ssl.certificate.location"] = str(kafka.ssl_certificate_location)
    if kafka.ssl_key_location:
        config["ssl.key.location"] = str(kafka.ssl_key_location)
    if kafka.ssl_key_password is not None:
        config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
    config.update(extra)
    return config


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Idempotent producer, acks=all, lz4."""
    return client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            **extra,
        },
    )


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    """Manual commits, read_committed, cooperative rebalancing."""
    return client_config(
        settings,
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky",
            **extra,
        },
    )
