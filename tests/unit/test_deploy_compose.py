"""docker-compose.yml and the Dockerfile are valid and consistent: no engine runs here, so we check them statically.

`docker compose config` semantics, as far as a file can show them: variables are interpolated (a `${VAR:?}` that is
unset or empty refuses the whole file, as compose does), the result validates against the compose-spec JSON schema
(vendored in deploy/schema/compose-spec.json, nothing fetched), and every reference resolves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fraudstream.settings import build_settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "deploy" / "schema" / "compose-spec.json"
#: What a user exports before `docker compose up` (the README's example values).
REQUIRED_ENV = {"REDIS_PASSWORD": "r" * 32, "USER_ID_HMAC_KEY": "h" * 64, "REGISTRY_SIGNING_KEY": "s" * 64,
                "CONSOLE_DB_PASSWORD": "d" * 32, "CONSOLE_SESSION_SECRET": "c" * 64}
#: The uid the fraudstream images run as (Dockerfile).
SERVICE_UID = "10001"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|"
                       r"(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class ComposeRefused(ValueError):
    """What `docker compose config` would print and exit non-zero with."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation over every string of the document ($$ is a literal $)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":?", "?") and empty:
            raise ComposeRefused(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and empty:
            return arg
        if op in (":+", "+"):
            return "" if empty else arg
        return current or ""

    return _VARIABLE.sub(one, value)


def load_compose(env: dict[str, str]) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())  # merge keys (<<) resolved by the loader
    assert isinstance(doc, dict)
    return dict(interpolate(doc, env))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(REQUIRED_ENV)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _long_running(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") != "no"


def _published_host_ports(service: dict[str, Any]) -> list[str]:
    """Fixed host ports a service publishes ('9108' alone publishes an ephemeral host port: none fixed)."""
    fixed = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if port.get("published") not in (None, ""):
                fixed.append(f"{port.get('host_ip', '0.0.0.0')}:{port['published']}")
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        if len(parts) >= 2 and parts[-2]:
            fixed.append(f"{parts[0] if len(parts) == 3 else '0.0.0.0'}:{parts[-2]}")
    return fixed


def test_validates_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_the_schema_check_catches_a_bad_file(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["streamer"]["depends_on"]["bootstrap"]["condition"] = "service_finished"
    broken["services"]["redis"]["healthchek"] = {"test": ["CMD", "true"]}
    assert len(list(validator.iter_errors(broken))) >= 2


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_an_unset_or_empty_secret_refuses_the_file(missing: str) -> None:
    for value in (None, ""):
        env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
        if value is not None:
            env[missing] = value
        with pytest.raises(ComposeRefused, match=missing):
            load_compose(env)


def test_no_secret_defaults_to_empty() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(KEY|PASSWORD|SECRET|TOKEN)[A-Z_]*:?-", text), "a secret must not default"


def test_services_and_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "topics", "bootstrap", "streamer", "trainer", "volume-init"} <= set(services)
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name} mounts undeclared volume {source}"
    assert services["trainer"].get("profiles") == ["train"], "the trainer is a one-shot job"
    assert "--appendonly" in services["redis"]["command"], "redis must persist its data"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_streamers_wait_for_a_first_model_and_their_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    waits = {k: v["condition"] for k, v in services["streamer"]["depends_on"].items()}
    assert waits == {"kafka": "service_healthy", "redis": "service_healthy",
                     "topics": "service_completed_successfully", "bootstrap": "service_completed_successfully"}
    bootstrap = services["bootstrap"]
    assert bootstrap["command"][:2] == ["fraudstream", "bootstrap"]
    assert bootstrap["build"]["target"] == "training", "training a first model needs the [train] extra"
    assert services["streamer"]["build"]["target"] == "streamer", "the streamer image has no TensorFlow"
    # the bootstrap writes to the registry the streamers read
    assert "model-registry:/registry" in bootstrap["volumes"]
    assert "model-registry:/registry:ro" in services["streamer"]["volumes"]


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if _long_running(service):
            assert not check.get("disable") and check.get("test"), f"{name} runs for good: it needs a probe"
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        else:
            # a one-shot job is judged by its exit; whoever waits for it must say service_completed_successfully
            assert check.get("disable") is True, f"{name} is a job: disable its probe explicitly"
            for other, svc in compose["services"].items():
                wait = svc.get("depends_on", {}).get(name)
                if wait is not None:
                    assert wait["condition"] == "service_completed_successfully", f"{other} waits on job {name}"


def test_no_two_replicas_share_a_host_port(compose: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for name, service in compose["services"].items():
        ports = _published_host_ports(service)
        replicas = int(service.get("deploy", {}).get("replicas", 1))
        assert not (replicas > 1 and ports), f"{name} has {replicas} replicas and fixed host ports {ports}"
        for port in ports:
            host_port = port.rsplit(":", 1)[1]
            assert host_port not in seen, f"{name} and {seen[host_port]} both publish host port {host_port}"
            seen[host_port] = name


def test_the_port_rule_catches_a_fixed_port() -> None:
    assert _published_host_ports({"ports": ["127.0.0.1:9108:9108"]}) == ["127.0.0.1:9108"]
    assert _published_host_ports({"ports": ["9108:9108/tcp", "9109"]}) == ["0.0.0.0:9108"]
    assert _published_host_ports({"ports": [{"target": 9108, "published": "9108"}]}) == ["0.0.0.0:9108"]
    assert _published_host_ports({"ports": [{"target": 9108}]}) == []


def test_every_fraud_env_name_is_a_real_setting(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        fraud = {k: v for k, v in _env(service).items() if k.startswith("FRAUD_")}
        if not fraud:
            continue
        settings = build_settings(environ=fraud)  # raises ConfigError on an unknown, invalid or empty-secret name
        assert settings.kafka.bootstrap_servers == "kafka:9092", name
        assert settings.redis.url is not None and "@redis:6379" in settings.redis.url.get_secret_value(), name
        checked += 1
    assert checked >= 4


def test_the_console_uses_postgresql_and_a_fixed_session_secret(compose: dict[str, Any]) -> None:
    services = compose["services"]
    console = services["console"]
    assert console["command"][:2] == ["fraudstream", "console"]
    settings = build_settings(environ={k: v for k, v in _env(console).items() if k.startswith("FRAUD_")})
    url = settings.database_url
    postgres = _env(services["postgres"])
    assert url == (f"postgresql://{postgres['POSTGRES_USER']}:{REQUIRED_ENV['CONSOLE_DB_PASSWORD']}@postgres:5432/"
                   f"{postgres['POSTGRES_DB']}")
    assert postgres["POSTGRES_PASSWORD"] == REQUIRED_ENV["CONSOLE_DB_PASSWORD"]
    secret = settings.console.session_secret
    assert secret is not None and secret.get_secret_value() == REQUIRED_ENV["CONSOLE_SESSION_SECRET"]
    assert settings.console.cookie_secure
    assert console["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(settings.console.port) in console["command"] and console["ports"] == ["127.0.0.1:8080:8080"]
    assert console["build"]["target"] == "training"  # training runs and backtests from the console need [train]
    assert str(settings.console.runs_dir).startswith("/reports/") and "reports:/reports" in console["volumes"]


def test_the_scoring_api_reads_the_streamers_state_on_its_own_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, streamer, console = services["api"], services["streamer"], services["console"]
    assert api["command"][:3] == ["fraudstream", "api", "serve"]
    settings = build_settings(environ={k: v for k, v in _env(api).items() if k.startswith("FRAUD_")})
    streams = build_settings(environ={k: v for k, v in _env(streamer).items() if k.startswith("FRAUD_")})
    assert settings.api.port != build_settings(environ={}).console.port, "the defaults of the API and console clash"
    port = str(settings.api.port)
    assert api["command"][api["command"].index("--port") + 1] == port and api["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/v1/health" in " ".join(api["healthcheck"]["test"])
    assert port not in " ".join(console["command"]) and all(port not in p for p in console["ports"])
    # the keys the API peeks at are the ones the streamers write: same namespace, same user-id HMAC, same scorer
    assert settings.redis.namespace == streams.redis.namespace
    assert settings.streamer.user_id_hmac_key == streams.streamer.user_id_hmac_key is not None
    assert settings.streamer.scorer == streams.streamer.scorer
    assert settings.registry.path == streams.registry.path and "model-registry:/registry:ro" in api["volumes"]
    assert str(settings.api_keys_file).startswith("/api-keys/") and "api-keys:/api-keys" in api["volumes"]
    assert api["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"


def test_streamers_serve_probes_where_the_healthcheck_asks(compose: dict[str, Any]) -> None:
    streamer = compose["services"]["streamer"]
    settings = build_settings(environ={k: v for k, v in _env(streamer).items() if k.startswith("FRAUD_")})
    assert settings.streamer.metrics_host == "0.0.0.0", "probes and Prometheus reach the worker over the network"
    assert str(settings.streamer.metrics_port) in [str(p) for p in streamer["expose"]]
    assert streamer["healthcheck"]["test"][1:] == ["python", "-m", "streamer.probe", "live"]
    key = settings.streamer.user_id_hmac_key
    assert key is not None and key.get_secret_value() == REQUIRED_ENV["USER_ID_HMAC_KEY"]


def test_volumes_written_by_the_service_user_are_owned_by_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = services["volume-init"]
    assert init["user"] == "0:0"
    script = " ".join(init["entrypoint"])
    assert f"chown -R {SERVICE_UID}:{SERVICE_UID}" in script
    initialised = {m.split(":")[1]: m.split(":")[0] for m in init["volumes"]}
    for path in initialised:
        assert path in script, f"volume-init mounts {path} but does not chown it"
    for name, service in services.items():
        if "build" not in service or name == "volume-init":
            continue
        for mount in service.get("volumes", []):
            source, target, *mode = mount.split(":")
            if mode != ["ro"]:
                assert initialised.get(target) == source, f"{name} writes {source} at {target}: volume-init owns it"
        assert service["depends_on"].get("volume-init", {}).get("condition") == "service_completed_successfully" or \
            all(m.endswith(":ro") for m in service.get("volumes", [])), name


def test_compose_kafka_matches_the_embedded_broker_version(compose: dict[str, Any]) -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{match.group(1)}"


# ---------------------------------------------------------------------------------------------- the Dockerfile
def _stages() -> dict[str, list[str]]:
    """Instructions per build stage (continuation lines joined), keyed by the stage name."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            assert match is not None
            current = match.group(2) or match.group(1)
            stages[current] = [line]
        elif current is not None:
            stages[current].append(line)
    return stages


def _chain(stages: dict[str, list[str]], name: str) -> list[str]:
    """A stage's instructions with those of the stages it is built FROM, first to last."""
    base = stages[name][0].split()[1]
    return (_chain(stages, base) if base in stages else []) + stages[name]


def test_dockerfile_is_multi_stage_with_a_streamer_and_a_training_target(compose: dict[str, Any]) -> None:
    stages = _stages()
    assert {"streamer", "training"} <= set(stages)
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets <= set(stages)


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    stages = _stages()
    for target, lock in (("streamer", "requirements/runtime.txt"), ("training", "requirements/train.txt")):
        chain = _chain(stages, target)
        installs = [i for i, line in enumerate(chain) if "pip install" in line and "requirements" in line]
        copies_code = [i for i, line in enumerate(chain) if line.startswith("COPY --from=wheel")]
        assert installs and copies_code and max(installs) < min(copies_code), target
        assert any(line.startswith("COPY") and lock in line for line in chain), f"{target} installs {lock}"
        assert (REPO / lock).is_file(), f"{lock} is missing: run scripts/lock.sh"
    wheel = stages["wheel"]
    copied = {line.split()[1] for line in wheel if line.startswith("COPY ")}
    for package in ("fraudstream", "features", "state", "models", "training", "streamer", "bankbus", "backtest"):
        assert package in copied, package
    assert not {"bench", "deploy", "tests"} & copied, "bench/, deploy/ and tests/ stay out of the images"


def test_the_streamer_image_has_no_tensorflow() -> None:
    chain = " ".join(_chain(_stages(), "streamer"))
    assert "train.txt" not in chain and "tensorflow" not in chain.lower()
    runtime = (REPO / "requirements" / "runtime.txt").read_text().lower()
    assert not re.search(r"^(tensorflow|tensorflow-cpu|keras|matplotlib|imbalanced-learn)==", runtime, re.M)
    train = (REPO / "requirements" / "train.txt").read_text().lower()
    assert re.search(r"^tensorflow-cpu==", train, re.M)


def test_images_are_unbuffered_non_root_and_probed() -> None:
    stages = _stages()
    for target in ("streamer", "training"):
        chain = _chain(stages, target)
        assert any("PYTHONUNBUFFERED=1" in line for line in chain), target
        users = [line.split()[1] for line in chain if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("root", "0"), target
        assert any(line.startswith("HEALTHCHECK") for line in stages[target]), target
    probe = next(line for line in stages["streamer"] if line.startswith("HEALTHCHECK"))
    assert "streamer.probe" in probe
