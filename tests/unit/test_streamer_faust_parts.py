"""The faust engine's pure parts: settings -> faust.App options (SASL/SSL), /health and /users payloads."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest

from features.state import UserState
from fraudstream.errors import ConfigError, StateStoreError
from fraudstream.settings import Settings, build_settings
from streamer.faust_batches import EngineStatus
from streamer.faust_config import faust_app_options, faust_broker_credentials
from streamer.faust_web import health_payload, redis_ping, user_state_payload
from streamer.scoring import ModelHolder


def settings(**sections: dict[str, Any]) -> Settings:
    return build_settings(sections, environ={})


def test_app_options_follow_settings() -> None:
    s = settings(
        kafka={"bootstrap_servers": "b1:9092,b2:9093", "client_id": "fs"},
        topics={"partitions": 12},
        embedded={"state_dir": "/var/lib/fs"},
        streamer={"consumer_group": "grp", "web_host": "0.0.0.0", "web_port": 7000},
    )
    options = faust_app_options(s)
    assert options["id"] == "grp.faust"  # never the kafka engine's group
    assert options["broker"] == ["kafka://b1:9092", "kafka://b2:9093"]
    assert options["processing_guarantee"] == "at_least_once"
    assert (options["value_serializer"], options["key_serializer"]) == ("raw", "raw")
    assert options["topic_partitions"] == 12 and options["topic_disable_leader"] is True
    assert (options["web_bind"], options["web_port"]) == ("0.0.0.0", 7000)
    assert options["datadir"] == str(Path("/var/lib/fs") / "faust")
    assert options["broker_credentials"] is None
    assert options["broker_session_timeout"] <= options["broker_request_timeout"]
    app = faust.App(**options)  # faust accepts every option
    assert app.conf.id == "grp.faust" and str(app.conf.processing_guarantee.value) == "at_least_once"


def test_default_web_server_binds_loopback_only() -> None:
    assert faust_app_options(settings())["web_bind"] == "127.0.0.1"


def test_sasl_plain_and_scram_credentials() -> None:
    s = settings(
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "svc",
            "sasl_password": "s3cret",
        }
    )
    creds = faust_broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("svc", "s3cret", "SCRAM-SHA-512")
    assert creds.ssl_context is None and creds.protocol.value == "SASL_PLAINTEXT"
    assert "s3cret" not in repr(creds)


def test_sasl_ssl_builds_a_verifying_tls_context() -> None:
    s = settings(kafka={"security_protocol": "SASL_SSL", "sasl_username": "svc", "sasl_password": "pw"})
    creds = faust_broker_credentials(s)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "PLAIN"
    assert isinstance(creds.ssl_context, ssl.SSLContext) and creds.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_ssl_only_and_bad_tls_files_and_missing_sasl_secrets() -> None:
    assert isinstance(faust_broker_credentials(settings(kafka={"security_protocol": "SSL"})), faust.SSLCredentials)
    with pytest.raises(ConfigError, match="SSL_CA_LOCATION"):
        faust_broker_credentials(settings(kafka={"security_protocol": "SSL", "ssl_ca_location": "/nope/ca.pem"}))
    with pytest.raises(ConfigError, match="SASL_USERNAME"):
        faust_broker_credentials(settings(kafka={"security_protocol": "SASL_PLAINTEXT"}))
    with pytest.raises(ConfigError, match="OAUTHBEARER"):
        faust_broker_credentials(settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}))


def status(**fields: Any) -> EngineStatus:
    base = EngineStatus(started_at=datetime(2024, 1, 1, tzinfo=UTC), started_mono=100.0, last_activity_mono=100.0)
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def holder(version: str = "v7") -> ModelHolder:
    model = SimpleNamespace(version=version, device="CPU", feature_names=(), thresholds={"stack": 0.5})
    return ModelHolder.fixed(cast(Any, model))


def test_health_ok_reports_version_partitions_and_last_batch() -> None:
    last = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    code, body = health_payload(
        status(last_batch_at=last, batches=3, events=90), holder(), {("tx", 1), ("tx", 0)}, None, 160.0
    )
    assert code == 200 and body["status"] == "ok" and body["problems"] == []
    assert body["model_version"] == "v7" and body["assigned_partitions"] == ["tx[0]", "tx[1]"]
    assert body["last_batch_at"] == last.isoformat() and body["events"] == 90 and body["uptime_s"] == 60.0


def test_health_503_when_redis_unreachable_or_no_model() -> None:
    code, body = health_payload(status(retrying_since_mono=150.0), holder(), set(), "ConnectionError: refused", 160.0)
    assert code == 503 and "redis unreachable" in body["problems"][0] and body["retrying_for_s"] == 10.0
    code, body = health_payload(status(), None, set(), None, 160.0)
    assert code == 503 and body["problems"] == ["no model loaded"] and body["model_version"] is None


class FakeStore:
    def __init__(self, states: dict[str, UserState], fail: bool = False) -> None:
        self.states = states
        self.fail = fail
        self.client = SimpleNamespace(ping=self._ping)

    def _ping(self) -> bool:
        if self.fail:
            raise ConnectionError("connection refused")
        return True

    def user_state(self, user_id: str) -> UserState | None:
        if self.fail:
            raise StateStoreError("redis down")
        return self.states.get(user_id)


def test_user_state_payload_found_unknown_and_store_down() -> None:
    store = FakeStore({"C1": UserState(last_ts=1_700_000_000, n_total=4, log_ts=(1, 2))})
    code, body = user_state_payload(cast(Any, store), "C1", hashed=True)
    assert code == 200 and body["state"]["n_total"] == 4 and body["state"]["log_ts"] == (1, 2)
    assert body["user_id_hashed_in_store"] is True
    assert user_state_payload(cast(Any, store), "C2", hashed=False)[0] == 404
    assert user_state_payload(cast(Any, FakeStore({}, fail=True)), "C1", hashed=False)[0] == 503


def test_redis_ping_reports_the_failure() -> None:
    assert redis_ping(cast(Any, FakeStore({}))) is None
    assert redis_ping(cast(Any, FakeStore({}, fail=True))) == "ConnectionError: connection refused"
