"""A local scale-out stack for tests and benchmarks: a 3-node KRaft Kafka cluster from the same Maven jars as the
embedded broker (replication factor 3, min.insync.replicas 2) and a Redis Cluster of 3 masters with a replica each.

Every node runs as its own process on 127.0.0.1 under one state folder, can be killed and started again by itself
(the fault run does), and is stopped by `stop()`. Nothing here is used by the production path: a bank points
FRAUD_KAFKA__BOOTSTRAP_SERVERS and FRAUD_REDIS__URL (with FRAUD_REDIS__CLUSTER=true) at its own clusters.
"""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fraudstream.errors import InfraError
from fraudstream.infra.kafka_embedded import _LOG4J2, KafkaPaths, ensure_jars
from fraudstream.infra.processes import port_open, tail, wait_until

REPLICATION = 3
MIN_INSYNC = 2


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java is not installed; install a JDK 17 (apt-get install openjdk-17-jre-headless)")
    return java


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log(self) -> Path:
        return self.root / "server.log"


@dataclass
class KafkaCluster:
    """Three combined broker+controller nodes; `ports[i]` is node i+1's client port."""

    state_dir: Path
    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]
    heap_mb: int = 384
    libs: Path | None = None  # resolved jars to reuse (the test stack's); default: resolved under state_dir
    nodes: list[KafkaNode] = field(default_factory=list)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _libs(self) -> Path:
        if self.libs is not None and any(self.libs.glob("kafka_*.jar")):
            return self.libs
        paths = KafkaPaths(self.state_dir / "jars")
        paths.root.mkdir(parents=True, exist_ok=True)
        ensure_jars(paths)
        return paths.libs

    def _jvm(self, libs: Path) -> list[str]:
        return [_java(), f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m", "-XX:+UseG1GC",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
                "-cp", f"{libs}/*"]

    def _properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.root / "data"),
            "auto.create.topics.enable": "false",
            "default.replication.factor": str(REPLICATION),
            "min.insync.replicas": str(MIN_INSYNC),
            "offsets.topic.replication.factor": str(REPLICATION),
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": str(REPLICATION),
            "transaction.state.log.min.isr": str(MIN_INSYNC),
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": str(REPLICATION),
            "share.coordinator.state.topic.min.isr": str(MIN_INSYNC),
            "group.initial.rebalance.delay.ms": "0",
            "unclean.leader.election.enable": "false",
            "log.retention.ms": "-1",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def start(self, timeout_s: float = 180.0) -> None:
        """Format every node with one cluster id (first start only), start them all, wait for every client port."""
        for taken in (*self.ports, *self.controller_ports):
            if port_open(taken):
                raise InfraError(f"port {taken} on 127.0.0.1 is taken; choose other cluster ports")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2)
        libs = self._libs()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.nodes = [KafkaNode(i + 1, p, c, self.state_dir / f"kafka-{i + 1}")
                      for i, (p, c) in enumerate(zip(self.ports, self.controller_ports, strict=True))]
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._properties(node))
            if not (node.root / "data" / "meta.properties").exists():
                done = subprocess.run([*self._jvm(libs), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                                       str(node.config)], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise InfraError(f"could not format {node.root}: {(done.stderr or done.stdout).strip()[-300:]}")
        for node in self.nodes:
            self.start_node(node.node_id, wait=False)
        for node in self.nodes:
            self._wait(node, timeout_s)

    def start_node(self, node_id: int, *, wait: bool = True, timeout_s: float = 180.0) -> None:
        node = self.nodes[node_id - 1]
        libs = self._libs()
        with node.log.open("ab") as log:
            node.process = subprocess.Popen([*self._jvm(libs), "kafka.Kafka", str(node.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        if wait:
            self._wait(node, timeout_s)

    def _wait(self, node: KafkaNode, timeout_s: float) -> None:
        process = node.process
        assert process is not None
        if not wait_until(lambda: port_open(node.port) or process.poll() is not None, timeout_s):
            raise InfraError(f"Kafka node {node.node_id} did not open port {node.port}: {tail(node.log)}")
        if process.poll() is not None:
            raise InfraError(f"Kafka node {node.node_id} exited (code {process.returncode}): {tail(node.log)}")

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (no clean shutdown: its partitions' leadership moves by the controller's decision)."""
        node = self.nodes[node_id - 1]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=30)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


@dataclass
class RedisClusterNodes:
    """len(ports) // 2 masters with one replica each (redis-cli --cluster create --cluster-replicas 1)."""

    state_dir: Path
    ports: tuple[int, ...]
    node_timeout_ms: int = 2000
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        folder = self.state_dir / f"redis-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise InfraError("redis-server is not installed; install the Debian package redis-server")
        self.processes[port] = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", str(self.node_timeout_ms),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_until(lambda: port_open(port), 20.0):
            raise InfraError(f"redis-server did not open port {port}: {tail(folder / 'redis.log')}")

    def start(self) -> None:
        for port in self.ports:
            if port_open(port):
                raise InfraError(f"port {port} on 127.0.0.1 is taken; choose other Redis cluster ports")
        for port in self.ports:  # a cluster is created once per state folder: start from empty nodes
            shutil.rmtree(self.state_dir / f"redis-{port}", ignore_errors=True)
        for port in self.ports:
            self.start_node(port)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "1",
             "--cluster-yes"], capture_output=True, text=True, check=False, timeout=120)
        if created.returncode != 0:
            raise InfraError(f"redis-cli --cluster create failed: {(created.stdout + created.stderr).strip()[-300:]}")
        if not wait_until(lambda: all(self.info(p).get("cluster_state") == "ok" for p in self.ports), 60.0, 0.5):
            raise InfraError("the Redis cluster did not reach cluster_state:ok")

    def cli(self, port: int, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=False,
                              timeout=30)
        return done.stdout

    def info(self, port: int) -> dict[str, str]:
        lines = self.cli(port, "cluster", "info").splitlines()
        return dict(line.strip().split(":", 1) for line in lines if ":" in line)

    def role(self, port: int) -> tuple[str, int | None]:
        """('master', None) or ('slave', its master's port)."""
        lines = self.cli(port, "role").split()
        if not lines:
            return "down", None
        return (lines[0], int(lines[2]) if lines[0] == "slave" and len(lines) > 2 else None)

    def masters(self) -> list[int]:
        return [p for p in self.ports if self.role(p)[0] == "master"]

    def fail_over(self, master: int, timeout_s: float = 60.0) -> int:
        """Promote a replica of `master` with CLUSTER FAILOVER (the replica takes its slots, the old master becomes
        its replica, no acknowledged write lost); returns the new master's port."""
        replica = next((p for p in self.ports if self.role(p) == ("slave", master)), None)
        if replica is None:
            raise InfraError(f"no replica of the Redis master on {master}")
        answer = self.cli(replica, "cluster", "failover").strip()
        if answer != "OK":
            raise InfraError(f"CLUSTER FAILOVER on {replica}: {answer}")
        if not wait_until(lambda: self.role(replica)[0] == "master" and self.info(replica).get("cluster_state") == "ok",
                          timeout_s, 0.2):
            raise InfraError(f"the replica on {replica} did not take over from {master}")
        return replica

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
