"""The one settings tree: frozen, prefix FRAUD_, nested with `__`, built once at start and passed down.

Nothing else in fraudstream reads the environment. `load_settings()` is called by the command line
(and by tests with explicit overrides); everything below receives the object it needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraudstream.errors import ConfigError

ENV_PREFIX = "FRAUD_"
NESTED_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_empty_secret(cls, value: Any, info: ValidationInfo) -> Any:
        """A secret set to '' (compose's `${KEY:-}` of an unset variable) is refused, never used as a key."""
        if isinstance(value, str) and not value.strip() and info.field_name is not None:
            if "SecretStr" in str(cls.model_fields[info.field_name].annotation):
                raise ValueError("is set but empty; give it a value, or unset the variable to leave it off")
        return value


class KafkaSettings(_Section):
    """Kafka client options. With no bootstrap_servers, the embedded local broker is used."""

    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    client_id: str = "fraudstream"
    request_timeout_s: PositiveFloat = 10.0

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not host:port (example: broker1:9092,broker2:9092)")
        return value


class TopicSettings(_Section):
    transactions: str = "transactions"
    dlq: str = "transactions.dlq"
    alerts: str = "alerts"
    scores: str = "scores"
    labels: str = "labels"
    late: str = "transactions.late"
    #: One record per closed hour of event time: PSI, alert rate, precision (streamer/drift.py, README "Drift").
    drift: str = "drift"
    partitions: PositiveInt = 6
    replication_factor: PositiveInt = 1

    def all_topics(self) -> list[str]:
        return [self.transactions, self.dlq, self.alerts, self.scores, self.labels, self.late, self.drift]


class RedisSettings(_Section):
    """A redis:// or rediss:// URL (password inside it stays secret). None: the embedded redis-server."""

    url: SecretStr | None = None
    #: The URL names one node of a Redis Cluster: the client discovers the others and follows the slots (every key
    #: one batch writes carries its partition's hash tag, state/keys.py).
    cluster: bool = False
    namespace: str = Field(default="fs", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    socket_timeout_s: PositiveFloat = 5.0

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix:// (example: redis://host:6379/0)")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("has no host (example: redis://host:6379/0)")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"has a malformed port: {exc}") from None
        return value


class EmbeddedSettings(_Section):
    """The local single-node stack started by `fraudstream up`."""

    state_dir: Path = Path(".fraudstream")
    kafka_port: int = Field(default=19092, gt=0, lt=65536)
    controller_port: int = Field(default=19093, gt=0, lt=65536)
    redis_port: int = Field(default=16379, gt=0, lt=65536)
    kafka_heap_mb: PositiveInt = 768
    start_timeout_s: PositiveFloat = 120.0


class FeatureSettings(_Section):
    label_delay_days: float = Field(default=7.0, ge=0.0)
    grace_period_s: float = Field(default=3600.0, ge=0.0)
    night_end_hour: int = Field(default=6, ge=0, le=23)


class RegistrySettings(_Section):
    path: Path = Path(".fraudstream/registry")
    #: HMAC-SHA256 key that signs every version's manifest (which holds every file's sha256). Unset: publishing
    #: and loading refuse, unless allow_unsigned.
    signing_key: SecretStr | None = None
    #: Development only (the embedded demo and the tests): publish unsigned versions when no key is set, and load
    #: a version whose manifest is unsigned. A signed manifest is still checked when a key is set.
    allow_unsigned: bool = False


class DatabaseSettings(_Section):
    """The console's database (cases, verdicts, users, audit trail): a SQLAlchemy URL, postgresql:// or sqlite:///.
    None: a SQLite file in the embedded state folder. The URL may carry a password, so it stays secret."""

    url: SecretStr | None = None
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in {"postgresql", "postgres", "sqlite"}:
            raise ValueError(
                "must start with postgresql:// or sqlite:/// (example: postgresql://user:secret@db:5432/fraudstream)"
            )
        if scheme != "sqlite" and not parts.hostname:
            raise ValueError("has no host (example: postgresql://user:secret@db:5432/fraudstream)")
        return value


class ConsoleSettings(_Section):
    """`fraudstream console`: the security team's web console."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, gt=0, lt=65536)
    #: Signs the session cookies. Unset: generated once into <embedded.state_dir>/console-session.key.
    session_secret: SecretStr | None = None
    session_max_age_s: PositiveInt = 8 * 3600
    #: Send the session cookie over HTTPS only (set it behind TLS; the embedded default serves plain HTTP).
    cookie_secure: bool = False
    #: The consumer group that stores alerts into the console's database.
    consumer_group: str = "fraudstream-console"
    #: The consumer group that stores the `scores` topic (each card's recent transactions and their scores).
    scores_consumer_group: str = "fraudstream-console-scores"
    #: Score records kept per card (the oldest beyond this are deleted as new ones arrive).
    scores_per_card: PositiveInt = 50
    #: Uploaded histories and training/backtest run folders. Unset: <embedded.state_dir>/console-runs.
    runs_dir: Path | None = None
    #: Larger uploads are refused.
    upload_max_bytes: PositiveInt = 256 * 1024 * 1024


class ApiSettings(_Section):
    """`fraudstream api serve`: the scoring API (POST /v1/score, one transaction against the state as it is)."""

    host: str = "127.0.0.1"
    #: Not the console's 8080: both run on one host by default (the embedded stack, docker-compose).
    port: int = Field(default=8000, gt=0, lt=65536)
    #: The API keys (a sha256 of each, never the key itself). Unset: <embedded.state_dir>/api-keys.json.
    keys_file: Path | None = None
    #: Larger request bodies are refused with 413 (a transaction is a few hundred bytes).
    max_body_bytes: PositiveInt = 64 * 1024


class DriftSettings(_Section):
    """Drift watched per hour of event time against the model's training reference (README "Drift")."""

    enabled: bool = True
    #: PSI above this (of the scores or of any watched feature) in a closed hour: one warning line and the hour's
    #: drift record says `retrain: true` (the cue for `fraudstream train --from-topics` on the recent range).
    psi_threshold: PositiveFloat = 0.2
    #: Hours with fewer scored events than this never ask for retraining (their PSI is noise); still recorded.
    min_hour_events: PositiveInt = 500
    #: The event-time days before the crossed hour's end that the retraining run it asks for reads from the topics.
    retrain_days: PositiveInt = 28


class StreamerSettings(_Section):
    engine: Literal["kafka", "faust"] = "kafka"
    consumer_group: str = "fraudstream-streamer"
    transactional_id: str = "fraudstream-streamer"
    #: kafka engine: exactly_once (outputs and consumed offsets in one Kafka transaction per commit interval) or
    #: at_least_once (no transactions; an idempotent producer; offsets committed once their outputs are delivered).
    #: The faust engine is at least once either way.
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    #: kafka engine: one Kafka transaction (at least once: one offset commit) spans every batch processed within
    #: this long of the first; 0: one per batch. Kafka Streams' commit.interval.ms, quix-streams' commit_interval.
    commit_interval_ms: NonNegativeInt = 100
    #: Most records in one processed batch (one Redis round trip).
    poll_batch_size: PositiveInt = 2000
    #: With nothing fetched, how long one poll blocks for the first record.
    poll_timeout_s: PositiveFloat = 0.2
    #: Most rows per model call.
    micro_batch_max_size: PositiveInt = 1024
    #: Once a record is there, how long to linger for more before processing. 0: take what has been fetched, so
    #: batches grow with the load by themselves (records arriving during a batch form the next one).
    #: The faust engine waits at least FAUST_MIN_WAIT_MS (its take() needs a window).
    micro_batch_max_wait_ms: NonNegativeInt = 0
    #: kafka engine: the broker answers a fetch once it holds this many bytes for it or after fetch_max_wait_ms
    #: (librdkafka's fetch.min.bytes and fetch.wait.max.ms). librdkafka's defaults (1 byte) answer each fetch
    #: with whatever single records have arrived, so at a tenth of the load the broker spent a core on fetches
    #: (101 % of a core exactly once, 48 % with these defaults; bench/e2e.py). The wait bounds the latency added.
    fetch_min_bytes: PositiveInt = 65_536
    fetch_max_wait_ms: PositiveInt = 20
    #: kafka engine: hold fetched transactions that run more than the label delay less the grace period ahead of
    #: the slowest partition not caught up (in event time), so merchant features are the same however the input
    #: was batched (a backlog, a replay, a restart); README "Event-time alignment". False: process as fetched.
    event_time_alignment: bool = True
    #: How long a partition with nothing fetched may keep the others waiting before it stops counting.
    alignment_max_wait_ms: NonNegativeInt = 2000
    #: unset: the scorer of the model's policy (its registry manifest; models/policy.py). Set: that scorer, with
    #: its own threshold from training.
    scorer: Literal["mlp", "stack", "blend"] | None = None
    #: Where the MLP is scored: auto (CUDA when a usable device is there, else the CPU), cpu (NumPy), cuda (the MLP's
    #: ONNX graph on onnxruntime-gpu's CUDA execution provider, the [gpu] extra; no usable device: exit 2). The stack
    #: stays on the CPU either way (README: GPU scoring).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: On CUDA, model calls of fewer rows than this stay on the CPU's NumPy path (kernel launches and copies cost more
    #: than a small batch). A guess until measured on a GPU (python -m bench --sections stages); see the README.
    gpu_min_batch: PositiveInt = 4096
    #: unset: the policy's weight. Set and different from it with scorer blend: refused (exit 2), since the blend
    #: threshold was calibrated for the policy's weight only; train with that weight instead.
    blend_mlp_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    top_reasons: PositiveInt = 3
    #: How alerts explain the MLP's part (models/attribution.py): deeplift (the rescale rule: one forward and one
    #: backward pass, exact sum) or integrated_gradients (64 steps, the residual spread; ~20x the cost).
    mlp_attribution: Literal["deeplift", "integrated_gradients"] = "deeplift"
    #: Threads that explain a batch's alerts together (streamer/explain_threads.py: TreeSHAP and the MLP's NumPy
    #: passes run without the GIL); a batch with fewer than 32 alerts per thread uses fewer. 1: the consume thread.
    explain_threads: int = Field(default=1, ge=1, le=64)
    max_future_skew_s: PositiveFloat = 300.0
    reload_poll_s: PositiveFloat = 5.0
    user_id_hmac_key: SecretStr | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, lt=65536)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, lt=65536)
    #: Redis retry backoff: 0.1 s doubling up to this, each wait drawn uniformly below it (full jitter).
    redis_retry_max_s: PositiveFloat = 4.0
    #: kafka engine: the longest a broker or coordinator failure may stall it once the broker answers again: a
    #: commit that has not returned by then is given up and the producer rebuilt; a member with partitions to
    #: take but no assignment or progress for this long is restarted (new consumers); close() waits at most this.
    recovery_timeout_s: float = Field(default=60.0, ge=5.0, le=600.0)


class Settings(BaseSettings):
    """The whole configuration. Immutable once built."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    redis: RedisSettings = RedisSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    features: FeatureSettings = FeatureSettings()
    registry: RegistrySettings = RegistrySettings()
    streamer: StreamerSettings = StreamerSettings()
    drift: DriftSettings = DriftSettings()
    database: DatabaseSettings = DatabaseSettings()
    console: ConsoleSettings = ConsoleSettings()
    api: ApiSettings = ApiSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        ports = [self.embedded.kafka_port, self.embedded.controller_port, self.embedded.redis_port]
        if len(set(ports)) != len(ports):
            raise ValueError("embedded kafka_port, controller_port and redis_port must differ")
        return self

    @property
    def uses_embedded_kafka(self) -> bool:
        return self.kafka.bootstrap_servers is None

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis.url is None

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers or f"127.0.0.1:{self.embedded.kafka_port}"

    @property
    def redis_url(self) -> str:
        if self.redis.url is not None:
            return self.redis.url.get_secret_value()
        return f"redis://127.0.0.1:{self.embedded.redis_port}/0"

    @property
    def database_url(self) -> str:
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        return f"sqlite:///{self.embedded.state_dir / 'console.db'}"

    @property
    def api_keys_file(self) -> Path:
        return self.api.keys_file or self.embedded.state_dir / "api-keys.json"

    def safe_summary(self) -> dict[str, Any]:
        """A form fit for start-up logs: secrets masked, passwords in URLs removed."""
        data = self.model_dump(mode="json")  # SecretStr dumps as '**********'
        redis_url = urlsplit(self.redis_url)
        if redis_url.password:
            netloc = redis_url.netloc.replace(f":{redis_url.password}@", ":**********@")
            data["redis"]["url"] = redis_url._replace(netloc=netloc).geturl()
        else:
            data["redis"]["url"] = self.redis_url
        data["kafka"]["bootstrap_servers"] = self.bootstrap_servers
        database_url = urlsplit(self.database_url)
        if database_url.password:
            netloc = database_url.netloc.replace(f":{database_url.password}@", ":**********@")
            data["database"]["url"] = database_url._replace(netloc=netloc).geturl()
        else:
            data["database"]["url"] = self.database_url
        return data

    def with_overrides(self, **sections: Mapping[str, Any]) -> Settings:
        """A new, validated tree with some fields of some sections replaced (for tests and backtests)."""
        data = self.model_dump()
        for section, values in sections.items():
            if section not in data or not isinstance(data[section], dict):
                raise ConfigError(f"unknown settings section '{section}'")
            data[section].update(values)
        return build_settings(data, environ={})


def _known_env_paths() -> set[str]:
    known: set[str] = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                known.add(f"{name}{NESTED_DELIMITER}{sub}".upper())
        known.add(name.upper())
    return known


def _first_error_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = NESTED_DELIMITER.join(str(p) for p in err["loc"]).upper()
    env_name = f"{ENV_PREFIX}{where}" if where else "settings"
    msg = err["msg"].removeprefix("Value error, ")
    return f"invalid setting {env_name}: {msg}"


def build_settings(data: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate `data` (explicit values) over the environment `environ` (os.environ when None)."""
    env = dict(os.environ if environ is None else environ)
    known = _known_env_paths()
    for key in env:
        if key.upper().startswith(ENV_PREFIX):
            path = key.upper()[len(ENV_PREFIX) :]
            if path not in known:
                raise ConfigError(
                    f"unknown setting {key}: check the spelling; known settings are listed by "
                    "`fraudstream config`"
                )
    merged: dict[str, Any] = {}
    for key, value in env.items():
        if not key.upper().startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        node = merged
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    for section, values in (data or {}).items():
        if isinstance(values, Mapping) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    try:
        return _InitOnlySettings(**merged)
    except ValidationError as exc:
        raise ConfigError(_first_error_line(exc)) from None


class _InitOnlySettings(Settings):
    """Settings built from an explicit mapping only; build_settings has already read the environment."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def]
        return (init_settings,)


def load_settings() -> Settings:
    """The production entry: FRAUD_* environment variables over the defaults."""
    return build_settings()
