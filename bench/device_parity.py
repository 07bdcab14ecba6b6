"""`python -m bench.device_parity`: the same transactions through two short `fraudstream stream` runs, one with
FRAUD_STREAMER__DEVICE=cpu and one with the device asked for (default cuda, every model call on the GPU:
gpu_min_batch 1), and their score records compared per transaction.

Each run has its own scores topic, consumer group and Redis namespace (removed at the end), reads the one published
backlog from the start and exits when idle. The topics have one partition: drained from a backlog, six partitions
are read in an order that differs from run to run, and a merchant's windows then hold different events (another
partition's older events not read yet), so scores would differ for a reason that is not the device. The second
run's log must say where it scored ("scoring on cuda:0 (...)"). Prints one JSON line; exit 0 when every
transaction has a score in both runs, the scores agree within --tolerance and the log names the device, else 1.
The embedded stack is started if needed (FRAUD_EMBEDDED__*).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.streams import REPO, free_port, publish_frame, settings_env
from fraudstream.infra.topics import ensure_topics, partition_count
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings

DEVICE_LINE = re.compile(r"scoring on (cuda:\d+ \([^)]*\)|cpu)")


def read_scores(settings: Settings, idle_s: float = 3.0) -> dict[str, float]:
    """transaction id -> score, from the start of the run's scores topic (read_committed) until idle_s of quiet."""
    topic = settings.topics.scores
    consumer = Consumer(consumer_config(settings, f"parity-reader-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partition_count(settings, topic))])
    scores: dict[str, float] = {}
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            messages = consumer.consume(1000, timeout=0.2)
            for message in messages:
                if message.error() is None:
                    record = json.loads(message.value() or b"{}")
                    scores[record["transaction_id"]] = float(record["score"])
            if messages:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return scores


def run_stream(settings: Settings, log_path: Path, idle_exit_s: float, timeout_s: float) -> tuple[int, str]:
    """`fraudstream stream --from earliest --idle-exit S` at INFO; (exit code, the device its log names)."""
    env = {**settings_env(settings), "FRAUD_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "fraudstream", "stream", "--from", "earliest", "--idle-exit", str(idle_exit_s),
               "--instance-id", f"parity-{uuid.uuid4().hex[:6]}"]
    with log_path.open("wb") as log:
        code = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s,
                              check=False).returncode
    found = DEVICE_LINE.search(log_path.read_text(errors="replace"))
    return code, found.group(1) if found else ""


def compare(cpu: dict[str, float], other: dict[str, float], tolerance: float) -> dict[str, Any]:
    """Per transaction: the ids only one run scored, and the largest score difference over the ids both scored."""
    both = cpu.keys() & other.keys()
    diff = max((abs(cpu[t] - other[t]) for t in both), default=None)
    return {"scored_cpu": len(cpu), "scored_other": len(other), "in_both": len(both),
            "only_cpu": len(cpu.keys() - other.keys()), "only_other": len(other.keys() - cpu.keys()),
            "max_abs_diff": diff, "within_tolerance": diff is not None and diff <= tolerance}


def run(base: Settings, device: str, events: int, tolerance: float, workdir: Path) -> dict[str, Any]:
    from backtest.isolation import drop_kafka_names, drop_redis_namespace
    from bench.__main__ import ensure_model, traffic_of

    registry = base.embedded.state_dir.resolve() / "bench" / "registry"
    base = base.with_overrides(registry={"path": str(registry), "allow_unsigned": True})
    ensure_model(registry)
    run_id = uuid.uuid4().hex[:8]
    source = f"parity-{run_id}.transactions"
    traffic = traffic_of(events).iloc[:events]
    runs: dict[str, Settings] = {}
    for tag, chosen in (("cpu", "cpu"), ("other", device)):
        name = f"parity-{run_id}-{tag}"
        kinds = ("dlq", "alerts", "scores", "labels", "late", "drift")
        topics = {k: f"{name}.{k}" for k in kinds} | {"transactions": source}
        runs[tag] = base.with_overrides(
            topics={**topics, "partitions": 1}, redis={"namespace": f"p{run_id}{tag}"},
            streamer={"consumer_group": name, "transactional_id": name, "web_port": free_port(), "metrics_port": 0,
                      "scorer": "mlp", "device": chosen, "gpu_min_batch": 1})
        ensure_topics(runs[tag])
    try:
        publish_frame(runs["cpu"], traffic)
        result: dict[str, Any] = {"events": len(traffic), "device": device}
        scores = {}
        for tag, settings in runs.items():
            started = time.monotonic()
            code, named = run_stream(settings, workdir / f"stream-{tag}.log", 10.0, 900.0)
            scores[tag] = read_scores(settings)
            result[tag] = {"exit_code": code, "log_says": f"scoring on {named}" if named else None,
                           "seconds": round(time.monotonic() - started, 1),
                           "log": str(workdir / f"stream-{tag}.log")}
        result.update(compare(scores["cpu"], scores["other"], tolerance))
        wanted = {"cuda": "scoring on cuda:", "cpu": "scoring on cpu", "auto": "scoring on "}[device]
        result["ok"] = bool(result["within_tolerance"] and result["only_cpu"] == result["only_other"] == 0
                            and result["in_both"] == len(traffic) and all(result[t]["exit_code"] == 0 for t in runs)
                            and (result["other"]["log_says"] or "").startswith(wanted))
        return result
    finally:
        for settings in runs.values():
            drop_redis_namespace(settings)
            group = settings.streamer.consumer_group
            drop_kafka_names(settings, [group, f"{group}.labels"])


def main(argv: list[str] | None = None) -> int:
    from fraudstream.errors import FraudstreamError
    from fraudstream.infra.stack import down, up
    from fraudstream.logs import configure_logging
    from fraudstream.settings import build_settings

    parser = argparse.ArgumentParser(prog="python -m bench.device_parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "auto", "cpu"), default="cuda", help="the second run's device")
    parser.add_argument("--events", type=int, default=20_000, help="transactions published once, read by both runs")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest allowed score difference")
    parser.add_argument("--logs", type=Path, default=None, help="folder for the two runs' logs (default: a new one)")
    args = parser.parse_args(argv)
    try:
        base = build_settings()
        configure_logging(base.log_level, base.log_format)
        stack = up(base, create_topics=False)
        try:
            workdir = args.logs or Path(tempfile.mkdtemp(prefix="parity-"))
            workdir.mkdir(parents=True, exist_ok=True)
            result = run(base, args.device, args.events, args.tolerance, workdir)
        finally:
            if stack.started:
                down(base)
    except FraudstreamError as exc:
        print(f"device_parity: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
