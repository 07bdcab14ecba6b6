"""Settings -> faust.App options: broker URL, SASL/SSL credentials, group id, web bind, data dir.

Pure translation (no broker contact), so every option the faust engine runs with is unit-tested.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from fraudstream.errors import ConfigError
from fraudstream.settings import KafkaSettings, Settings

#: Suffix of the faust consumer group: it must never share offsets with the confluent-kafka engine's group.
FAUST_GROUP_SUFFIX = ".faust"
#: A crashed worker's partitions move to the others after this long (a stopped one leaves the group at once).
SESSION_TIMEOUT_S = 30.0


def faust_app_id(settings: Settings) -> str:
    """The faust app id, which faust also uses as the Kafka consumer group id."""
    group = settings.streamer.consumer_group
    return group if group.endswith(FAUST_GROUP_SUFFIX) else group + FAUST_GROUP_SUFFIX


def faust_broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]


def faust_data_dir(settings: Settings) -> Path:
    return Path(settings.embedded.state_dir) / "faust"


def faust_web_port(settings: Settings) -> int:
    """The web server port; 0 (any free port, which faust cannot take) is resolved to a free port here."""
    port = settings.streamer.web_port
    if port:
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((settings.streamer.web_host, 0))
        return int(sock.getsockname()[1])


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """A client TLS context from the CA / client certificate paths in the settings."""
    for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
        path = getattr(kafka, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"FRAUD_KAFKA__{name.upper()} points at {path}, which is not a file")
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None
        )
        if kafka.ssl_certificate_location:
            password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
            context.load_cert_chain(
                str(kafka.ssl_certificate_location),
                str(kafka.ssl_key_location) if kafka.ssl_key_location else None,
                password=password,
            )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot build the Kafka TLS context from FRAUD_KAFKA__SSL_* files: {exc}") from None
    return context


def faust_broker_credentials(settings: Settings) -> Any:
    """faust credentials matching KafkaSettings.security_protocol (None for PLAINTEXT)."""
    import faust

    kafka = settings.kafka
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(kafka) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = kafka.sasl_mechanism or "PLAIN"
    if mechanism == "OAUTHBEARER":
        raise ConfigError("the faust engine does not support SASL OAUTHBEARER; use --engine kafka or SCRAM/PLAIN")
    if not kafka.sasl_username or kafka.sasl_password is None:
        raise ConfigError(
            f"security_protocol {protocol} needs FRAUD_KAFKA__SASL_USERNAME and FRAUD_KAFKA__SASL_PASSWORD"
        )
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=mechanism,
    )


def faust_app_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for faust.App: at-least-once, raw bytes, no tables, no leader topic, local web server."""
    streamer = settings.streamer
    return {
        "id": faust_app_id(settings),
        "broker": faust_broker_urls(settings),
        "broker_credentials": faust_broker_credentials(settings),
        "broker_client_id": settings.kafka.client_id,
        # faust refuses a session timeout above the request timeout.
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_request_timeout": max(settings.kafka.request_timeout_s, SESSION_TIMEOUT_S + 10.0),
        # faust-streaming's exactly_once mode has open duplicate reports: at-least-once on an idempotent core.
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication_factor,
        "topic_allow_declare": False,  # topics are created by `fraudstream topics`; never re-declared by faust
        "topic_disable_leader": True,
        "producer_acks": -1,
        # Wait for the batch in flight to be acked before a rebalance or stop commits.
        "stream_wait_empty": True,
        "datadir": str(faust_data_dir(settings)),
        "web_enabled": True,
        "web_bind": streamer.web_host,
        "web_host": streamer.web_host,
        "web_port": faust_web_port(settings),
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
    }
