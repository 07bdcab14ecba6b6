"""The embedded Kafka: one combined broker+controller (KRaft) on 127.0.0.1, from Maven Central jars.

deploy/kafka/pom.xml lists the jars; they are copied once into <state>/kafka/libs and reused while the pom
is unchanged. StorageTool formats the log directory on first start; kafka.Kafka runs the node. Each in its
own JVM, because Kafka calls System.exit.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fraudstream.errors import InfraError
from fraudstream.infra.processes import port_open, read_pid, stop_pid, tail, wait_until
from fraudstream.settings import Settings

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = info
"""


@dataclass(frozen=True)
class KafkaPaths:
    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"


def paths(settings: Settings) -> KafkaPaths:
    return KafkaPaths(settings.embedded.state_dir.resolve() / "kafka")


def server_properties(settings: Settings, data_dir: Path) -> str:
    port, controller = settings.embedded.kafka_port, settings.embedded.controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(settings.topics.partitions),
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Historical replays carry old event timestamps: never expire by time here.
        "log.retention.ms": "-1",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def ensure_jars(kafka_paths: KafkaPaths) -> None:
    """Resolve the broker jars with Maven once; reuse them while the pom is unchanged."""
    marker = kafka_paths.libs / f".resolved-{_pom_digest()}"
    if marker.exists():
        return
    if shutil.which("mvn") is None:
        raise InfraError("Maven (mvn) is not installed; install it (apt-get install maven) or point "
                         "FRAUD_KAFKA__BOOTSTRAP_SERVERS at an existing broker")
    if kafka_paths.libs.exists():
        shutil.rmtree(kafka_paths.libs)
    kafka_paths.libs.mkdir(parents=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={kafka_paths.libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise InfraError(f"could not resolve the Kafka jars with Maven: {last[0]}")
    marker.touch()


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java is not installed; install a JDK 17 (apt-get install openjdk-17-jre-headless)")
    return java


def _jvm(settings: Settings, kafka_paths: KafkaPaths) -> list[str]:
    heap = settings.embedded.kafka_heap_mb
    return [
        _java(), f"-Xmx{heap}m", f"-Xms{min(heap, 256)}m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kafka_paths.root / 'log4j2.properties'}",
        "-cp", f"{kafka_paths.libs}/*",
    ]


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding, as Kafka's `Uuid.randomUuid` makes them,
    redrawn while it starts with '-' (Kafka does the same): `kafka-storage format -t -xyz...` reads such an id as an
    option and refuses to format, which failed one start in 64.

    >>> draws = iter([bytes([0xFB]) + bytes(15), bytes(16)])
    >>> new_cluster_id(lambda: next(draws))
    'AAAAAAAAAAAAAAAAAAAAAA'
    """
    while True:
        cluster = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


def _format_storage(settings: Settings, kafka_paths: KafkaPaths) -> None:
    if (kafka_paths.data / "meta.properties").exists():
        return
    cluster = new_cluster_id()
    result = subprocess.run(
        [*_jvm(settings, kafka_paths), "kafka.tools.StorageTool", "format", "-t", cluster,
         "-c", str(kafka_paths.config)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"could not format the Kafka log directory: {(result.stderr or result.stdout).strip()}")


def running_pid(settings: Settings) -> int | None:
    return read_pid(paths(settings).pid_file)


def start(settings: Settings) -> bool:
    """Start the embedded broker unless ours is already running. True when this call started it."""
    kafka_paths = paths(settings)
    port = settings.embedded.kafka_port
    if read_pid(kafka_paths.pid_file) is not None:
        return False
    for taken in (port, settings.embedded.controller_port):
        if port_open(taken):
            raise InfraError(
                f"port {taken} on 127.0.0.1 is already taken by another process; stop it, or choose other "
                "ports with FRAUD_EMBEDDED__KAFKA_PORT / FRAUD_EMBEDDED__CONTROLLER_PORT"
            )
    kafka_paths.root.mkdir(parents=True, exist_ok=True)
    ensure_jars(kafka_paths)
    kafka_paths.config.write_text(server_properties(settings, kafka_paths.data))
    (kafka_paths.root / "log4j2.properties").write_text(_LOG4J2)
    _format_storage(settings, kafka_paths)
    with kafka_paths.log.open("ab") as log:
        process = subprocess.Popen(
            [*_jvm(settings, kafka_paths), "kafka.Kafka", str(kafka_paths.config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    kafka_paths.pid_file.write_text(str(process.pid))
    if not wait_until(lambda: port_open(port) or process.poll() is not None, settings.embedded.start_timeout_s):
        stop_pid(kafka_paths.pid_file)
        raise InfraError(f"Kafka did not open port {port} in {settings.embedded.start_timeout_s:.0f} s; "
                         f"see {kafka_paths.log}: {tail(kafka_paths.log)}")
    if process.poll() is not None:
        kafka_paths.pid_file.unlink(missing_ok=True)
        raise InfraError(f"Kafka exited at start (code {process.returncode}); see {kafka_paths.log}: "
                         f"{tail(kafka_paths.log)}")
    return True


def stop(settings: Settings) -> bool:
    return stop_pid(paths(settings).pid_file, timeout_s=60.0)
