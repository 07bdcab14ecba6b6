"""scripts/demo.sh run as a user would, without a terminal: a tiny world, Ctrl-C (SIGINT to its process group)
midway through the live phase; every process gone within 2 s, and the printed figures equal the ones computed here
from the simulator's truth and the scores topic."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fraudstream.infra.topics import partition_count
from fraudstream.kafka_config import consumer_config
from fraudstream.settings import Settings
from tests.streamer_process import REPO, env_for

pytestmark = pytest.mark.integration

FINAL = re.compile(
    r"final: ([\d,]+) scored, ([\d,]+) alerts = ([\d.]+) per 1,000 \| precision (n/a|[\d.]+%) \((\d+)/(\d+) alerts "
    r"are fraud\) \| recall (n/a|[\d.]+%) \((\d+)/(\d+) frauds alerted\) \| fraud cards caught (\d+)/(\d+)"
)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _scores(settings: Settings) -> list[dict[str, object]]:
    topic = settings.topics.scores
    consumer = Consumer(consumer_config(settings, f"{topic}-check", **{"enable.partition.eof": True}))
    n = partition_count(settings, topic)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(n)])
    done: set[int] = set()
    out = []
    try:
        while len(done) < n:
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is not None:
                    done.add(int(m.partition() or 0))
                else:
                    out.append(json.loads(m.value() or b"{}"))
    finally:
        consumer.close()
    return out


def test_demo_stops_on_ctrl_c_within_2_s_and_prints_the_true_quality_figures(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    topics = {t: f"{unique_name}-{t}" for t in ("transactions", "dlq", "alerts", "scores", "labels", "late", "drift")}
    settings = stack_settings.with_overrides(topics={**topics, "partitions": 2},
                                             registry={"path": str(tmp_path / "registry")})
    env = env_for(settings)
    for name in ("FRAUD_REDIS__NAMESPACE", "FRAUD_STREAMER__CONSUMER_GROUP", "FRAUD_LOG_LEVEL"):
        env.pop(name, None)  # the demo chooses its own per run
    env.update({"DEMO_DIR": str(tmp_path / "demo"), "DEMO_CUSTOMERS": "150", "DEMO_HISTORY_DAYS": "28",
                "DEMO_WARMUP_DAYS": "3", "DEMO_LIVE_DAYS": "1", "DEMO_RATE": "40", "DEMO_SECONDS": "60",
                "FRAUD_TOPICS__PARTITIONS": "2",
                # the console the demo serves: the suite's port, and its database and session key in this test's folder
                "FRAUD_CONSOLE__PORT": str(stack_settings.console.port),
                "FRAUD_EMBEDDED__STATE_DIR": str(tmp_path / "state")})
    # Ctrl-C as a terminal user has it: a suite launched in the background (`cmd &` in a script, nohup) inherits
    # SIGINT ignored, and bash cannot trap a signal ignored at its start, so the demo would never see it
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    assert demo.stdout is not None
    try:
        for line in demo.stdout:  # until the live phase has printed a quality line
            lines.append(line)
            if "s live]" in line and " 0 scored" not in line:
                break
        else:
            pytest.fail("the demo ended before its live phase:\n" + "".join(lines[-30:]))
        assert len(_group_members(demo.pid)) >= 4  # bash, watcher, streamer, publisher (and a sleep)
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        sent = time.monotonic()
        while _group_members(demo.pid) and time.monotonic() - sent < 5:
            time.sleep(0.02)
        gone_after = time.monotonic() - sent
        rest = demo.stdout.read()
    finally:
        if _group_members(demo.pid):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(10)
    output = "".join(lines) + rest
    assert gone_after <= 2.0, f"processes left {gone_after:.2f} s after SIGINT:\n{output[-3000:]}"
    assert demo.returncode == 130, output[-3000:]
    assert "interrupted: publisher, streamer and watcher stopped" in output
    assert "left behind:" in output and "still running: Kafka and Redis" in output
    assert f"model registry: {tmp_path / 'registry'} (set FRAUD_REGISTRY__PATH=" in output
    assert re.search(r"threshold [\d.]+ \(the training run's alert budget: 40 alerts per day", output)
    assert "validation: precision" in output and "Traceback" not in output
    assert f"security console: http://127.0.0.1:{stack_settings.console.port}/ (user analyst" in output

    final = FINAL.search(output)
    assert final is not None, output[-3000:]
    (run_dir,) = (tmp_path / "demo").glob("run-*")
    truth = pd.read_parquet(run_dir / "live.parquet")
    fraud = dict(zip(truth["transaction_id"], truth["is_fraud"].astype(bool), strict=True))
    card = dict(zip(truth["transaction_id"], truth["user_id"], strict=True))
    scored = {str(s["transaction_id"]): bool(s["alerted"]) for s in _scores(settings) if s["transaction_id"] in fraud}
    alerts = [t for t, alerted in scored.items() if alerted]
    true_alerts = [t for t in alerts if fraud[t]]
    frauds = [t for t in scored if fraud[t]]
    expected = (len(scored), len(alerts), len(true_alerts), len(alerts), len(true_alerts), len(frauds),
                len({card[t] for t in true_alerts}), len({card[t] for t in frauds}))
    printed = tuple(int(final.group(i).replace(",", "")) for i in (1, 2, 5, 6, 8, 9, 10, 11))
    assert printed == expected
    assert 0 < len(scored) < len(truth)  # stopped midway: some live traffic scored, not all of it
    assert float(final.group(3)) == round(1000 * len(alerts) / len(scored), 1)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["quality"]["scored"] == len(scored) and summary["quality"]["alerts"] == len(alerts)
