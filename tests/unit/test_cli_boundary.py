"""The command line's error boundary, the start-up wait for Kafka and Redis, and the root callback's settings."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import typer
from confluent_kafka import KafkaError, KafkaException

from fraudstream import cli as cli_module
from fraudstream.boundary import translate
from fraudstream.errors import (
    ConfigError,
    DataError,
    ExitCode,
    InfraError,
    InputError,
    InternalError,
    ModelError,
    ModelUnavailable,
    StateStoreError,
)
from fraudstream.infra.wait import Dependency, RetrySchedule, wait_for_dependencies
from fraudstream.settings import Settings, build_settings

SETTINGS = build_settings(environ={
    "FRAUD_KAFKA__BOOTSTRAP_SERVERS": "broker1:9093,broker2:9093",
    "FRAUD_REDIS__URL": "redis://svc:hunter2@redis.bank:6380/1",
})


# ---------------------------------------------------------------------------------------------- exit codes
def test_each_class_carries_its_documented_exit_code() -> None:
    assert {ConfigError.exit_code, InputError.exit_code} == {2}
    assert {DataError.exit_code, ModelError.exit_code} == {65}
    assert {InfraError.exit_code, StateStoreError.exit_code, ModelUnavailable.exit_code} == {69}
    assert InternalError.exit_code == 70
    assert issubclass(DataError, InputError) and issubclass(ModelUnavailable, ModelError)  # callers' excepts hold


# -------------------------------------------------------------------------------------------- translation
def test_kafka_transport_failure_is_unavailable_and_names_the_brokers() -> None:
    error = translate(KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure")), SETTINGS)
    assert isinstance(error, InfraError) and error.exit_code == 69
    assert "Kafka at broker1:9093,broker2:9093" in str(error) and "Broker transport failure" in str(error)
    assert "FRAUD_KAFKA__BOOTSTRAP_SERVERS" in str(error) and "fraudstream up" in str(error)


@pytest.mark.parametrize("code", [KafkaError._INVALID_ARG, KafkaError.SASL_AUTHENTICATION_FAILED])
def test_kafka_configuration_and_credentials_are_configuration_errors(code: int) -> None:
    error = translate(KafkaException(KafkaError(code, "refused")), SETTINGS)
    assert isinstance(error, ConfigError) and error.exit_code == 2
    assert "FRAUD_KAFKA__" in str(error)


def test_redis_down_is_unavailable_names_the_url_and_keeps_the_password_secret() -> None:
    error = translate(redis.ConnectionError("Error 111 connecting to redis.bank:6380. Connection refused."), SETTINGS)
    assert isinstance(error, InfraError) and error.exit_code == 69
    assert "redis://svc:**********@redis.bank:6380/1" in str(error) and "hunter2" not in str(error)
    assert "FRAUD_REDIS__URL" in str(error) and "Connection refused" in str(error)


def test_redis_refusing_the_password_is_a_configuration_error() -> None:
    error = translate(redis.AuthenticationError("invalid username-password pair"), SETTINGS)
    assert isinstance(error, ConfigError) and "password in FRAUD_REDIS__URL" in str(error)


def test_a_path_that_cannot_be_used_is_named() -> None:
    error = translate(PermissionError(errno.EACCES, "Permission denied", "/srv/registry/current"), SETTINGS)
    assert isinstance(error, InputError) and error.exit_code == 2
    assert "/srv/registry/current" in str(error) and "Permission denied" in str(error)


def test_a_taken_port_is_a_configuration_error() -> None:
    error = translate(OSError(errno.EADDRINUSE, "Address already in use"), SETTINGS)
    assert isinstance(error, ConfigError) and "FRAUD_STREAMER__METRICS_PORT" in str(error)


def test_anything_else_is_a_bug_that_points_at_debug() -> None:
    error = translate(ZeroDivisionError("division by zero"), None)
    assert isinstance(error, InternalError) and error.exit_code == 70
    assert str(error).startswith("unexpected ZeroDivisionError: division by zero") and "--debug" in str(error)


def test_errors_raised_on_purpose_pass_through() -> None:
    original = DataError("x.csv: has no rows")
    assert translate(original, SETTINGS) is original


# --------------------------------------------------------------------------------------- start-up wait
class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _dep(name: str, answers: Callable[[], bool], time: FakeTime, probe_s: float = 0.1) -> Dependency:
    def probe(timeout_s: float) -> str | None:
        assert timeout_s >= 2.0  # never less than the minimum attempt
        time.now += probe_s
        return None if answers() else "Connection refused"

    return Dependency(name, f"check {name}", probe)


def test_the_schedule_doubles_up_to_its_maximum() -> None:
    delays = RetrySchedule(first_s=0.5, max_s=4.0).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_nothing_is_said_when_everything_answers(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    with caplog.at_level(logging.INFO, logger="fraudstream.infra.wait"):
        wait_for_dependencies([_dep("Redis at r", lambda: True, time)], bound_s=5, bound_name="--idle-exit",
                              clock=time.clock, sleep=time.sleep)
    assert caplog.records == [] and time.sleeps == []


def test_a_dependency_down_is_said_at_once_with_the_schedule_and_the_wait_ends_when_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    with caplog.at_level(logging.WARNING, logger="fraudstream.infra.wait"):
        wait_for_dependencies([_dep("Redis at r", lambda: time.now > 3, time)], bound_s=None,
                              bound_name="--wait-timeout", clock=time.clock, sleep=time.sleep)
    first, last = caplog.records[0].getMessage(), caplog.records[-1].getMessage()
    assert first == ("Redis at r does not answer (Connection refused); retrying after 0.5 s, doubling up to every "
                     "30 s, waiting without end (bound it with --wait-timeout); check Redis at r")
    assert len(caplog.records) == 2 and last == "Redis at r answering now; starting"
    assert time.sleeps == [0.5, 1.0, 2.0]


def test_the_wait_stops_at_its_bound_naming_what_did_not_answer() -> None:
    time = FakeTime()
    deps = [_dep("Kafka at k", lambda: False, time), _dep("Redis at r", lambda: True, time)]
    with pytest.raises(InfraError) as raised:
        wait_for_dependencies(deps, bound_s=5, bound_name="--idle-exit", clock=time.clock, sleep=time.sleep)
    assert str(raised.value) == (
        "Kafka at k did not answer within 5 s (--idle-exit): Connection refused; check Kafka at k"
    )
    assert raised.value.exit_code == 69
    assert 5 <= time.now < 5 + 0.3 and sum(time.sleeps) < 5  # the last pause is cut to the bound


def test_a_zero_bound_probes_once_and_fails_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    with caplog.at_level(logging.WARNING, logger="fraudstream.infra.wait"), pytest.raises(InfraError) as raised:
        wait_for_dependencies([_dep("Redis at r", lambda: False, time)], bound_s=0, bound_name="--wait-timeout",
                              clock=time.clock, sleep=time.sleep)
    assert "(not waiting: --wait-timeout is 0)" in str(raised.value)
    assert caplog.records == [] and time.sleeps == []


# ------------------------------------------------------------------------------------------ run() itself
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[
    Callable[..., tuple[int, str]]
]:
    for name in [k for k in os.environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FRAUD_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("FRAUD_EMBEDDED__STATE_DIR", str(tmp_path / "state"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def invoke(*argv: str) -> tuple[int, str]:
        code = cli_module.run(argv)
        return code, capsys.readouterr().err

    yield invoke
    root.handlers[:] = handlers
    root.setLevel(level)


def _explode(_self: Settings) -> None:
    raise ValueError("boom")


def test_an_unexpected_exception_is_one_line_and_exit_70(cli: Callable[..., tuple[int, str]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Settings, "safe_summary", _explode)
    code, err = cli("config")
    assert code == 70 and "Traceback" not in err
    assert err.strip() == ("fraudstream: error: unexpected ValueError: boom (a bug in fraudstream: rerun with --debug "
                           "for the traceback and report it)")


def test_debug_shows_the_traceback_then_the_same_line(cli: Callable[..., tuple[int, str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Settings, "safe_summary", _explode)
    code, err = cli("--debug", "config")
    assert code == 70 and "Traceback (most recent call last)" in err and "ValueError: boom" in err
    assert err.strip().splitlines()[-1].startswith("fraudstream: error: unexpected ValueError: boom")


def test_a_raw_client_exception_from_a_command_goes_through_the_boundary(cli: Callable[..., tuple[int, str]],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import fraudstream.infra.topics

    def fail(*_args: object, **_kwargs: object) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))

    monkeypatch.setattr(fraudstream.infra.topics, "ensure_topics", fail)
    code, err = cli("topics")
    assert code == ExitCode.UNAVAILABLE and "Traceback" not in err
    assert err.strip().startswith("fraudstream: error: Kafka at 127.0.0.1:1 failed: Broker transport failure; check "
                                  "FRAUD_KAFKA__BOOTSTRAP_SERVERS")


def test_settings_are_built_once_by_the_root_callback(cli: Callable[..., tuple[int, str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Settings] = []

    def counting() -> Settings:
        calls.append(build_settings())
        return calls[-1]

    monkeypatch.setattr(cli_module, "load_settings", counting)
    assert cli("config")[0] == 0
    assert len(calls) == 1


def test_settings_of_refuses_a_context_the_root_callback_did_not_fill() -> None:
    ctx = typer.Context(typer.main.get_command(cli_module.app))
    with pytest.raises(RuntimeError, match="root callback"):
        cli_module.settings_of(ctx)
