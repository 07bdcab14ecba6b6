"""The faust engine end to end against the real broker and Redis: workers run as `fraudstream stream --engine faust`
subprocesses (faust's loop and signal handling stay out of pytest)."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path

import pytest

from fraudstream.contracts import Label, LabelSource
from fraudstream.infra.topics import ensure_topics
from fraudstream.settings import Settings
from tests.faust_support import (
    TopicReader,
    committed_offsets,
    end_offsets,
    health,
    http_get,
    isolated_settings,
    produce,
    produce_transactions,
    start_worker,
    wait_for,
)
from tests.streamer_support import publish_tiny_model, simulated_transactions, txn_headers

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120.0
FLOW_TIMEOUT_S = 120.0


def prepare(stack_settings: Settings, unique_name: str, tmp_path: Path, **streamer: object) -> tuple[Settings, str]:
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry", **streamer)
    ensure_topics(settings)
    version = publish_tiny_model(settings.registry.path)
    return settings, version


def bad_records(good_json: bytes) -> dict[str, bytes | None]:
    """One record of every kind of bad input, keyed by a name that ends up in the DLQ assertions."""
    good = json.loads(good_json)
    return {
        "broken-json": b'{"transaction_id": "X1", ',
        "invalid-utf8": b"\xff\xfe\x00garbage",
        "wrong-type": json.dumps({**good, "transaction_id": "BAD-TYPE", "amount": "lots"}).encode(),
        "missing-field": json.dumps({k: v for k, v in good.items() if k != "merchant_id"}).encode(),
        "negative-amount": json.dumps({**good, "transaction_id": "BAD-NEG", "amount": -5}).encode(),
        "nan-amount": json.dumps({**good, "transaction_id": "BAD-NAN"})
        .encode()
        .replace(f'"amount": {json.dumps(good["amount"])}'.encode(), b'"amount": NaN'),
        "huge-amount": json.dumps({**good, "transaction_id": "BAD-HUGE", "amount": 1e12}).encode(),
        "year-1": json.dumps({**good, "transaction_id": "BAD-Y1", "timestamp": "0001-01-01T00:00:00Z"}).encode(),
        "far-future": json.dumps({**good, "transaction_id": "BAD-FUT", "timestamp": "2999-01-01T00:00:00Z"}).encode(),
        "empty": b"",
        "tombstone": None,
    }


def test_traffic_in_alerts_out_bad_input_to_dlq_and_web_views(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings, version = prepare(stack_settings, unique_name, tmp_path)
    txns = simulated_transactions(customers=40, merchants=30, days=3, seed=3)
    first, second = txns[: len(txns) // 2], txns[len(txns) // 2 :]
    bad = bad_records(first[0].model_dump_json().encode())
    produce_transactions(settings, first)
    produce(settings, settings.topics.transactions, [(b"bad-user", value, txn_headers()) for value in bad.values()])
    produce_transactions(settings, second)
    verdict = Label(
        transaction_id=first[0].transaction_id,
        user_id=first[0].user_id,
        is_fraud=True,
        source=LabelSource.analyst,
        labelled_at=first[0].timestamp,
        merchant_id=first[0].merchant_id,
        transaction_timestamp=first[0].timestamp,
    )
    produce(settings, settings.topics.labels, [(verdict.user_id.encode(), verdict.model_dump_json().encode(), [])])

    worker = start_worker(settings, tmp_path / "worker.log")
    scores = TopicReader(settings, settings.topics.scores)
    dlq = TopicReader(settings, settings.topics.dlq)
    alerts = TopicReader(settings, settings.topics.alerts)
    try:
        scores.until(len(txns), FLOW_TIMEOUT_S + START_TIMEOUT_S, worker)
        dlq.until(len(bad), FLOW_TIMEOUT_S, worker)
        alerts.poll()

        # every good transaction scored exactly once (no replay happened), by the published model
        scored = [s["transaction_id"] for s in scores.json()]
        assert sorted(scored) == sorted(t.transaction_id for t in txns)
        assert {s["model_version"] for s in scores.json()} == {version}

        # alerts: over the threshold, keyed by user, with reasons an analyst reads
        flagged = {s["transaction_id"] for s in scores.json() if s["alerted"]}
        assert flagged, "the tiny model should flag some simulated transactions"
        alerts.until(len(flagged), FLOW_TIMEOUT_S, worker)
        by_txn = {a["transaction"]["transaction_id"]: a for a in alerts.json()}
        assert set(by_txn) == flagged
        for message in alerts.records:
            alert = json.loads(message.value())
            assert message.key() == alert["transaction"]["user_id"].encode()
            assert alert["score"] >= alert["threshold"] and alert["model_version"] == version
            assert alert["reasons"] and all(r["text"] for r in alert["reasons"])

        # every kind of bad input is in the DLQ with its original bytes, the good ones around it were scored
        letters = dlq.json()
        assert len(letters) == len(bad)
        originals = sorted(base64.b64decode(d["original_b64"]) for d in letters)
        assert originals == sorted(value or b"" for value in bad.values())  # tombstone and empty: no bytes
        assert all(d["topic"] == settings.topics.transactions and d["error_class"] for d in letters)

        # web views
        status = wait_for(lambda: health(worker), 30, "/health 200", worker)
        assert status["model_version"] == version and status["events"] >= len(txns) + len(bad)
        assert status["assigned_partitions"] and status["last_batch_at"]
        code, body = http_get(worker.url("/metrics"))
        assert code == 200 and b"fraudstream_alerts_total" in body and b"fraudstream_events_total" in body
        assert b"fraudstream_labels_total 1.0" in body  # the labels topic is consumed by the same agent
        user = txns[0].user_id
        code, body = http_get(worker.url(f"/users/{user}/state"))
        state = json.loads(body)
        assert code == 200 and state["user_id"] == user
        assert state["state"]["n_total"] == sum(t.user_id == user for t in txns)
        assert http_get(worker.url("/users/nobody-at-all/state"))[0] == 404

        assert worker.stop() == 0
        assert "Traceback" not in worker.log()
        # the graceful stop committed everything it processed: a restart would replay nothing
        committed = committed_offsets(settings, f"{settings.streamer.consumer_group}.faust")
        ends = end_offsets(settings)
        # an empty partition: no commit (-1001) or the start position committed for the new group (0) are the same
        committed = {tp: -1001 if ends[tp] == -1001 and offset == 0 else offset for tp, offset in committed.items()}
        assert committed == ends, "offsets not committed at stop"
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        for reader in (scores, dlq, alerts):
            reader.close()


def test_model_swap_mid_stream_changes_version_on_later_alerts(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings, v1 = prepare(stack_settings, unique_name, tmp_path)
    txns = simulated_transactions(customers=30, merchants=20, days=2, seed=5)
    half = len(txns) // 2
    worker = start_worker(settings, tmp_path / "worker.log")
    scores = TopicReader(settings, settings.topics.scores)
    alerts = TopicReader(settings, settings.topics.alerts)
    try:
        produce_transactions(settings, txns[:half])
        scores.until(half, FLOW_TIMEOUT_S + START_TIMEOUT_S, worker)
        # a new version with a threshold low enough to alert on everything becomes `current`
        v2 = publish_tiny_model(settings.registry.path, threshold=0.0001, seed=1)
        assert v2 != v1
        wait_for(lambda: (health(worker) or {}).get("model_version") == v2, 60, "the swap to v2", worker)
        produce_transactions(settings, txns[half:])
        scores.until(len(txns), FLOW_TIMEOUT_S, worker)
        by_txn = {s["transaction_id"]: s for s in scores.json()}
        assert {by_txn[t.transaction_id]["model_version"] for t in txns[:half]} == {v1}
        assert {by_txn[t.transaction_id]["model_version"] for t in txns[half:]} == {v2}
        flagged = [s for s in scores.json() if s["alerted"]]
        alerts.until(len(flagged), FLOW_TIMEOUT_S, worker)
        later = {t.transaction_id for t in txns[half:]}
        versions = {a["transaction"]["transaction_id"]: a["model_version"] for a in alerts.json()}
        assert {v for txn_id, v in versions.items() if txn_id in later} == {v2}
        assert {v for txn_id, v in versions.items() if txn_id not in later} <= {v1}
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        scores.close()
        alerts.close()


@pytest.mark.slow
def test_two_workers_share_partitions_and_one_takes_over_without_loss(
    stack_settings: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings, _ = prepare(stack_settings, unique_name, tmp_path)
    other = settings.with_overrides(streamer={"web_port": settings.streamer.web_port + 1})
    txns = simulated_transactions(customers=80, merchants=40, days=4, seed=7)
    third = len(txns) // 3
    a = start_worker(settings, tmp_path / "a.log")
    b = start_worker(other, tmp_path / "b.log")
    scores = TopicReader(settings, settings.topics.scores)
    alerts = TopicReader(settings, settings.topics.alerts)
    try:

        def split() -> bool:
            ha, hb = health(a), health(b)
            return bool(ha and hb and ha["assigned_partitions"] and hb["assigned_partitions"])

        wait_for(split, START_TIMEOUT_S, "both workers to own partitions", a)
        owned_a, owned_b = (set(health(w)["assigned_partitions"]) for w in (a, b))  # type: ignore[index]
        assert not owned_a & owned_b
        assert len(owned_a | owned_b) == 2 * settings.topics.partitions  # transactions + labels

        produce_transactions(settings, txns[:third])
        scores.until(third, FLOW_TIMEOUT_S, a)
        produce_transactions(settings, txns[third : 2 * third])
        assert a.stop() == 0  # graceful: finishes its batch in flight, commits, leaves the group
        produce_transactions(settings, txns[2 * third :])
        wait_for(
            lambda: (
                {s["transaction_id"] for s in (json.loads(v) for v in (scores.poll() and scores.values()))}
                >= {t.transaction_id for t in txns}
            ),
            FLOW_TIMEOUT_S,
            "b to score every transaction",
            b,
        )
        assert set(health(b)["assigned_partitions"]) == owned_a | owned_b  # type: ignore[index]

        # no event lost; any duplicate (at-least-once) is a byte-identical replay with the same alert_id
        for reader in (scores, alerts):
            reader.poll()
            seen: dict[str, set[bytes]] = defaultdict(set)
            for message in reader.records:
                record = json.loads(message.value())
                txn_id = record.get("transaction_id") or record["transaction"]["transaction_id"]
                seen[txn_id].add(message.value())
            assert all(len(values) == 1 for values in seen.values()), "a replayed output differs from the original"
        assert {json.loads(v)["transaction_id"] for v in scores.values()} == {t.transaction_id for t in txns}
        alert_ids: dict[str, set[str]] = defaultdict(set)
        for alert in alerts.json():
            alert_ids[alert["transaction"]["transaction_id"]].add(alert["alert_id"])
        assert all(len(ids) == 1 for ids in alert_ids.values())
        assert b.stop() == 0
    finally:
        for worker in (a, b):
            if worker.process.poll() is None:
                worker.process.kill()
        scores.close()
        alerts.close()
