"""Scale-out under faults: a 3-broker KRaft cluster (replication 3, min.insync.replicas 2) and a Redis Cluster of
3 masters with a replica each, 3 kafka-engine workers in one group over 12 partitions; mid-run a worker is added,
one broker is killed (SIGKILL) and started again, a worker is removed, and a Redis master is failed over to its
replica. Every event must be scored exactly once: counted on the scores topic with read_committed.

Started by the test itself from the same Maven jars as the test stack (fraudstream/infra/cluster.py) on free
ports (TEST_CLUSTER_KAFKA_PORTS, TEST_CLUSTER_CONTROLLER_PORTS, TEST_CLUSTER_REDIS_PORTS pick them instead).
Marked full and cluster: `make test` (CI) runs it, `make test-fast` does not. The counts are printed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fraudstream.errors import InfraError
from fraudstream.infra.cluster import KafkaCluster, RedisClusterNodes
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings
from tests.fault_support import free_port
from tests.streamer_kafka_support import isolated_settings, publish, read_all
from tests.streamer_process import REPO, env_for
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = [pytest.mark.integration, pytest.mark.full, pytest.mark.cluster]

PARTITIONS = 12


def _ports(name: str, count: int) -> tuple[int, ...]:
    given = os.environ.get(name)
    if given:
        ports = tuple(int(p) for p in given.split(","))
        assert len(ports) == count, f"{name} needs {count} ports"
        return ports
    return tuple(_cluster_port() if name == "TEST_CLUSTER_REDIS_PORTS" else free_port() for _ in range(count))


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid port and free too (Redis Cluster needs both)."""
    while True:
        port = free_port()
        if port + 10_000 >= 65_536:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def clusters(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[KafkaCluster, RedisClusterNodes]]:
    from fraudstream.infra import kafka_embedded

    given = any(os.environ.get(f"TEST_CLUSTER_{n}_PORTS") for n in ("KAFKA", "CONTROLLER", "REDIS"))
    for attempt in range(1 if given else 3):
        # ports come from the ephemeral range: a client socket may hold one between the probe and the bind
        root = tmp_path_factory.mktemp("cluster")
        kafka = KafkaCluster(root, _ports("TEST_CLUSTER_KAFKA_PORTS", 3), _ports("TEST_CLUSTER_CONTROLLER_PORTS", 3),
                             libs=kafka_embedded.paths(stack_settings).libs)
        redis = RedisClusterNodes(root, _ports("TEST_CLUSTER_REDIS_PORTS", 6))
        try:
            redis.start()
            kafka.start()
            break
        except InfraError:
            kafka.stop()
            redis.stop()
            if given or attempt == 2:
                raise
    try:
        yield kafka, redis
    finally:
        kafka.stop()
        redis.stop()


class ScoreCounter:
    """Counts the scores topic's committed records per transaction id, continuously (read_committed, assign())."""

    def __init__(self, settings: Settings) -> None:
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._consumer = Consumer(consumer_config(settings, "score-counter"))
        self._consumer.assign([TopicPartition(settings.topics.scores, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    self.counts[json.loads(message.value())["transaction_id"]] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_three_workers_twelve_partitions_survive_rebalances_a_broker_kill_and_a_redis_failover(
    stack_settings: Settings, clusters: tuple[KafkaCluster, RedisClusterNodes], unique_name: str, tmp_path: Path
) -> None:
    kafka, redis = clusters
    publish_tiny_model(tmp_path / "registry")
    base = stack_settings.with_overrides(
        kafka={"bootstrap_servers": kafka.bootstrap_servers},
        redis={"url": redis.url, "cluster": True, "socket_timeout_s": 2.0},
        topics={"replication_factor": 3},
    )
    settings = isolated_settings(base, unique_name, tmp_path / "registry", partitions=PARTITIONS,
                                 poll_batch_size=500)
    txns = simulated_transactions(customers=500, merchants=120, days=4, seed=17)
    n = len(txns)
    thirds = [txns[: n // 3], txns[n // 3 : 2 * n // 3], txns[2 * n // 3 :]]
    env = {**env_for(settings), "FRAUD_REDIS__CLUSTER": "true", "FRAUD_REDIS__SOCKET_TIMEOUT_S": "2.0",
           "FRAUD_TOPICS__REPLICATION_FACTOR": "3"}
    workers: dict[str, subprocess.Popen[str]] = {}
    logs: dict[str, Path] = {}

    def start(name: str) -> None:
        logs[name] = tmp_path / f"{name}.log"
        with logs[name].open("w") as log:
            workers[name] = subprocess.Popen(
                [sys.executable, "-m", "fraudstream", "stream", "--engine", "kafka", "--idle-exit", "45",
                 "--instance-id", name, "--from", "earliest"],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)

    counts: dict[str, Any] = {"events": n, "partitions": PARTITIONS, "broker_kills": 0, "broker_restarts": 0,
                              "workers_added": 0, "workers_removed": 0, "redis_failovers": 0}
    began = time.monotonic()
    counter = ScoreCounter(settings)
    try:
        publish(settings, thirds[0])
        for name in ("w1", "w2", "w3"):
            start(name)
        _wait("a sixth scored", lambda: counter.total >= n // 6, 180)

        start("w4")  # rebalance: a worker joins
        counts["workers_added"] += 1
        publish(settings, thirds[1])
        _wait("a third scored", lambda: counter.total >= n // 3, 180)

        kafka.kill_node(2)  # SIGKILL: leaders, a controller and maybe transaction coordinators move
        counts["broker_kills"] += 1
        time.sleep(8)
        kafka.start_node(2)
        counts["broker_restarts"] += 1
        _wait("half scored", lambda: counter.total >= n // 2, 240)

        workers["w1"].send_signal(signal.SIGTERM)  # rebalance: a worker leaves (finishes its batch, commits)
        counts["workers_removed"] += 1
        first_master = redis.masters()[0]
        counts["redis_new_master"] = redis.fail_over(first_master)
        counts["redis_failovers"] += 1
        publish(settings, thirds[2])
        _wait("every event scored", lambda: counter.total >= n, 300)
        time.sleep(3)  # anything doubled would show now
        for worker in workers.values():
            worker.send_signal(signal.SIGTERM)
        summaries = {}
        for name, worker in workers.items():
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0, f"{name} exited {worker.returncode}: {logs[name].read_text()[-2000:]}"
            summaries[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        counter.close()
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    # the authoritative count: a fresh read_committed read of the whole scores topic
    scored = Counter(json.loads(m.value())["transaction_id"] for m in read_all(settings, settings.topics.scores, 120))
    wanted = {t.transaction_id for t in txns}
    counts.update({
        "scored_records": sum(scored.values()),
        "lost": len(wanted - set(scored)),
        "duplicated": sum(c - 1 for c in scored.values() if c > 1),
        "unexpected": len(set(scored) - wanted),
        "records_per_worker": {k: v["records"] for k, v in summaries.items()},
        "kafka_retries": sum(v["kafka_retries"] for v in summaries.values()),
        "redis_retries": sum(v["redis_retries"] for v in summaries.values()),
        "wall_s": round(time.monotonic() - began, 1),
    })
    print("cluster fault run:", json.dumps(counts))
    (REPO / ".fraudstream").mkdir(exist_ok=True)
    (REPO / ".fraudstream" / "cluster-fault-run.json").write_text(json.dumps(counts, indent=2))
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["unexpected"] == 0, counts
    assert counts["scored_records"] == n
    assert len([w for w, v in summaries.items() if v["records"] > 0]) >= 3, "the load was shared"
