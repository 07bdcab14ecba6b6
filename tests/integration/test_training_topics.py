"""`fraudstream train --from-topics`: a time range of the real transactions and labels topics, no group commits."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bankbus.importer import HANDBOOK, import_frame
from bankbus.pacing import Pacing
from bankbus.publisher import outbox_for, send
from fraudstream.infra.topics import ensure_topics
from fraudstream.settings import Settings
from tests.cli_helpers import run_cli
from tests.unit.test_training_pipeline import handbook_style

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_train_from_a_topic_time_range(stack_settings: Settings, unique_name: str, tmp_path: Path) -> None:
    raw = handbook_style(days=24, users=60)
    frame = import_frame(raw.assign(TX_FRAUD_SCENARIO=raw["TX_FRAUD"]), HANDBOOK).frame
    topics = {"transactions": f"{unique_name}-tx", "labels": f"{unique_name}-labels"}
    settings = stack_settings.with_overrides(topics=topics)
    ensure_topics(settings, topics.values(), partitions=2)
    send(settings, outbox_for(frame, topics["transactions"], topics["labels"], timedelta(days=1)), Pacing())

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("models: [logistic_regression, mlp]\nstack_scorer_model: logistic_regression\n"
                   "model_params: {mlp: {epochs: 2}}\nprequential: {n_folds: 1, train_days: 5, delay_days: 3}\n")
    env = {
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "FRAUD_TOPICS__TRANSACTIONS": topics["transactions"],
        "FRAUD_TOPICS__LABELS": topics["labels"],
    }
    start, end = frame["timestamp"].min(), frame["timestamp"].min() + timedelta(days=20)
    result = run_cli("train", "--from-topics", "--start", start.strftime("%Y-%m-%dT%H:%M:%S"),
                     "--end", end.strftime("%Y-%m-%dT%H:%M:%S"), "--config", str(cfg),
                     "--registry", str(tmp_path / "reg"), "--report-dir", str(tmp_path / "report"), env=env)
    assert result.code == 0, result.err
    assert "published" in result.out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    expected_rows = int(((frame["timestamp"] >= start) & (frame["timestamp"] < end)).sum())
    assert report["rows"] == expected_rows, report.get("rows")

    neither = run_cli("train", "--from-topics", env=env)
    assert neither.code == 2 and "needs --start and --end, or --days" in neither.err
