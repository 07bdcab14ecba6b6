"""`fraudstream alerts tail` and `fraudstream label` against the real broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraudstream.contracts import Alert, Label, Reason, Transaction
from fraudstream.settings import Settings
from tests.cli_helpers import run_cli
from tests.streamer_kafka_support import isolated_settings, publish, read_all
from tests.streamer_process import env_for

pytestmark = pytest.mark.integration


def _alert(txn_id: str, user: str, score: float) -> Alert:
    txn = Transaction(
        transaction_id=txn_id,
        user_id=user,
        timestamp=datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
        amount=940.0,
        merchant_id="M42",
    )
    reason = Reason(
        feature="amount_ratio_mean_30d", value=9.4, contribution=2.0, text="amount 9.4x the user's 30-day mean"
    )
    return Alert.for_transaction(
        txn,
        score=score,
        threshold=0.5,
        model_version="v1",
        scorer="mlp",
        reasons=[reason],
        features={"amount": 940.0},
        produced_at=datetime(2024, 3, 1, 12, 30, 1, tzinfo=UTC),
    )


def test_tail_filters_and_label_fills_from_the_alert(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings = isolated_settings(stack_settings, unique_name, tmp_path, partitions=2)
    alerts = [_alert("TX1", "alice", 0.93), _alert("TX2", "bob", 0.61), _alert("TX3", "alice", 0.55)]
    publish(settings, [(a.transaction.user_id, a.model_dump_json().encode()) for a in alerts], settings.topics.alerts)
    env = env_for(settings)

    shown = run_cli("alerts", "tail", "--no-follow", "--min-score", "0.6", env=env)
    assert shown.code == 0, shown.err
    lines = shown.out.strip().splitlines()
    assert len(lines) == 2 and all("amount 9.4x the user's 30-day mean" in line for line in lines)
    assert {"TX1", "TX2"} == {line.split("txn ")[1].split()[0] for line in lines}
    only_alice = run_cli("alerts", "tail", "--no-follow", "--user", "alice", "--limit", "1", env=env)
    assert only_alice.code == 0 and len(only_alice.out.strip().splitlines()) == 1 and "alice" in only_alice.out

    done = run_cli("label", "TX2", "fraud", "--note", "card reported stolen", env=env)
    assert done.code == 0, done.err
    messages = read_all(settings, settings.topics.labels)
    assert len(messages) == 1
    label = Label.model_validate_json(messages[0].value())
    assert (label.user_id, label.merchant_id, label.is_fraud) == ("bob", "M42", True)
    assert label.transaction_timestamp == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    assert ("note", b"card reported stolen") in messages[0].headers()

    unknown = run_cli("label", "NOPE", "legit", env=env)
    assert unknown.code == 2 and unknown.err.strip().count("\n") == 0
    assert "has no alert" in unknown.err and "--user" in unknown.err
