"""The error boundary of the command line: any exception becomes one FraudstreamError line with its exit code.

Errors fraudstream raises on purpose already say what to fix. What escapes from the clients (librdkafka, redis-py,
the file system) is translated here into the same form: what failed, where (host:port, path) and what to try,
classed as a usage/configuration mistake (2), an unavailable dependency (69) or a bug (70). Nothing here imports
a client library: an exception of a client's type can only exist once the client is imported.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from fraudstream.errors import ConfigError, FraudstreamError, InfraError, InputError, InternalError
from fraudstream.settings import Settings

KAFKA_HINT = "check FRAUD_KAFKA__BOOTSTRAP_SERVERS, or run `fraudstream up` for the embedded broker"
REDIS_HINT = "check FRAUD_REDIS__URL, or run `fraudstream up` for the embedded redis-server"


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _kafka_where(settings: Settings | None) -> str:
    return f"Kafka at {settings.bootstrap_servers}" if settings is not None else "Kafka"


def _redis_where(settings: Settings | None) -> str:
    return f"Redis at {settings.safe_summary()['redis']['url']}" if settings is not None else "Redis"


def _from_kafka(exc: BaseException, settings: Settings | None) -> FraudstreamError | None:
    kafka = sys.modules.get("confluent_kafka")
    if kafka is None or not isinstance(exc, kafka.KafkaException):
        return None
    error: Any = exc.args[0] if exc.args else None
    if isinstance(error, kafka.KafkaError):
        code, text = error.code(), error.str()
    else:
        code, text = None, _first_line(exc)
    if code == kafka.KafkaError._INVALID_ARG:
        return ConfigError(f"Kafka client configuration refused: {text}; check the FRAUD_KAFKA__* settings")
    refused = {
        kafka.KafkaError._AUTHENTICATION, kafka.KafkaError.SASL_AUTHENTICATION_FAILED, kafka.KafkaError._SSL,
        kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, kafka.KafkaError.GROUP_AUTHORIZATION_FAILED,
        kafka.KafkaError.CLUSTER_AUTHORIZATION_FAILED, kafka.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
    if code in refused:
        return ConfigError(
            f"{_kafka_where(settings)} refused the client: {text}; check FRAUD_KAFKA__SECURITY_PROTOCOL, "
            "FRAUD_KAFKA__SASL_* / FRAUD_KAFKA__SSL_* and the ACLs"
        )
    return InfraError(f"{_kafka_where(settings)} failed: {text}; {KAFKA_HINT}")


def _from_redis(exc: BaseException, settings: Settings | None) -> FraudstreamError | None:
    if sys.modules.get("redis") is None:
        return None
    from redis import exceptions as rx

    if not isinstance(exc, rx.RedisError):
        return None
    text = _first_line(exc) or type(exc).__name__
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError):
        return ConfigError(f"{_redis_where(settings)} refused the client: {text}; check the user and password in "
                           "FRAUD_REDIS__URL")
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError):
        return InfraError(f"cannot reach {_redis_where(settings)}: {text}; {REDIS_HINT}")
    return InfraError(f"{_redis_where(settings)} failed: {text}; {REDIS_HINT}")


def _from_os(exc: BaseException) -> FraudstreamError | None:
    if not isinstance(exc, OSError):
        return None
    reason = exc.strerror or _first_line(exc) or type(exc).__name__
    if exc.filename is not None:
        where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        return InputError(f"cannot use {where}: {reason}; check the path and its permissions (paths given on "
                          "the command line, FRAUD_REGISTRY__PATH, FRAUD_EMBEDDED__STATE_DIR)")
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"a port this command listens on is taken ({reason}); stop the other process or "
                           "choose another port (FRAUD_STREAMER__METRICS_PORT, FRAUD_STREAMER__WEB_PORT)")
    return InfraError(f"a connection or the system failed: {reason}; check that Kafka and Redis answer "
                      "(`fraudstream status`)")


#: Modules of an optional extra (pyproject.toml) -> the extra that installs them.
EXTRAS = {"tensorflow": "train", "keras": "train", "imblearn": "train", "matplotlib": "train", "faust": "faust",
          "aiokafka": "faust", "mode": "faust"}


def _from_missing_extra(exc: BaseException) -> FraudstreamError | None:
    """A command that needs an extra the installation lacks (`pip install .` alone, the streamer image)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extra = EXTRAS.get(exc.name.split(".")[0])
    if extra is None:
        return None
    return ConfigError(f"this command needs the [{extra}] extra ({exc.name} is not installed): "
                       f"pip install 'fraudstream[{extra}]', or run it in the training image")


def translate(exc: BaseException, settings: Settings | None) -> FraudstreamError:
    """The FraudstreamError to report for `exc` (itself when it already is one)."""
    if isinstance(exc, FraudstreamError):
        return exc
    for attempt in (_from_missing_extra(exc), _from_kafka(exc, settings), _from_redis(exc, settings), _from_os(exc)):
        if attempt is not None:
            return attempt
    detail = _first_line(exc)
    return InternalError(
        f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} (a bug in fraudstream: rerun with "
        "--debug for the traceback and report it)"
    )
