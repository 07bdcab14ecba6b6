"""The scoring API against the real broker and redis-server: its score equals the one the stream then emits for the
same event and state, and the call leaves Redis exactly as it was."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyFile
from api.server import build_service
from fraudstream.contracts import ScoreRecord, Transaction
from fraudstream.settings import Settings
from tests.streamer_kafka_support import EngineThread, isolated_settings, publish, read_all, wait_until
from tests.streamer_support import publish_tiny_model, simulated_transactions

pytestmark = pytest.mark.integration


def scores_of(settings: Settings) -> dict[str, ScoreRecord]:
    records = [ScoreRecord.model_validate_json(m.value()) for m in read_all(settings, settings.topics.scores)]
    return {r.transaction_id: r for r in records}


def redis_dump(settings: Settings) -> dict[bytes, bytes]:
    """Every key of the settings' namespace with its DUMP (value and type, byte for byte)."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = sorted(client.scan_iter(match=f"{settings.redis.namespace}:*", count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        return dict(zip(keys, pipe.execute(), strict=True))
    finally:
        client.close()


def new_events(history: list[Transaction], count: int) -> list[Transaction]:
    """One new event for each of `count` users, after everything streamed, some with large amounts (alerts)."""
    last = max(t.timestamp for t in history)
    latest = {t.user_id: t for t in history}
    users = list(latest)[:count]
    return [
        latest[u].model_copy(update={
            "transaction_id": f"api-check-{k}", "timestamp": last + timedelta(minutes=k + 1),
            "amount": 5000.0 if k % 3 == 0 else 25.0 + k,
        })
        for k, u in enumerate(users)
    ]  # fmt: skip


def test_the_api_score_equals_the_streams_and_the_call_changes_nothing_in_redis(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    publish_tiny_model(tmp_path, threshold=0.5)
    settings = isolated_settings(stack_settings, unique_name, tmp_path).with_overrides(
        features={"label_delay_days": 0.25},  # the delayed merchant windows hold something after two days
        api={"keys_file": str(tmp_path / "keys.json")},
    )
    history = simulated_transactions(customers=30, merchants=20, days=2, seed=21)
    events = new_events(history, 8)
    worker = EngineThread(settings, "w1").start()
    service, close = build_service(settings)
    keys = KeyFile(settings.api_keys_file)
    key, _ = keys.create("integration", "test")
    client = TestClient(create_app(service, keys))
    try:
        publish(settings, history)
        wait_until(lambda: len(scores_of(settings)) >= len(history), 120, "the history scored")
        before = redis_dump(settings)
        answers: dict[str, Any] = {}
        for txn in events:
            response = client.post("/v1/score", content=txn.model_dump_json(),
                                   headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            answers[txn.transaction_id] = response.json()
        assert redis_dump(settings) == before, "the API call changed Redis"
        publish(settings, events)
        wait_until(lambda: all(t.transaction_id in scores_of(settings) for t in events), 90, "the new events scored")
    finally:
        close()
        worker.stop()
    streamed = scores_of(settings)
    for txn in events:
        api, stream = answers[txn.transaction_id], streamed[txn.transaction_id]
        assert abs(api["score"] - stream.score) <= 1e-9, (txn.transaction_id, api["score"], stream.score)
        assert (api["decision"] == "alert") is stream.alerted
        assert api["model_version"] == stream.model_version and api["threshold"] == stream.threshold
    assert {a["decision"] for a in answers.values()} == {"alert", "pass"}, "the events should fall on both sides"
    merchant = [a["features"]["merchant_count_1d"] for a in answers.values()]
    assert any(v > 0 for v in merchant), "the merchant side read nothing: the equality would not cover it"
    user = [a["features"]["count_1d"] for a in answers.values()]
    assert all(v > 1 for v in user), "the API did not read the users' streamed history"
