"""Output encoding, reason texts and the model holder's background reload."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraudstream.errors import StateStoreError
from models.registry import ModelRegistry
from streamer.outputs import OutputMessage, decode_messages, encode_messages
from streamer.reasons import explain, reason_text, top_indices
from streamer.scoring import ModelHolder
from tests.streamer_support import publish_tiny_model

_messages = st.lists(
    st.builds(
        OutputMessage,
        topic=st.text(min_size=1, max_size=20),
        key=st.binary(max_size=40),
        value=st.binary(max_size=200),
        headers=st.lists(st.tuples(st.text(max_size=10), st.binary(max_size=10)), max_size=3),
    ),
    max_size=4,
)


@given(_messages)
def test_output_encoding_round_trips(messages: list[OutputMessage]) -> None:
    assert decode_messages(encode_messages(messages)) == messages


def test_corrupt_cached_output_is_a_state_store_error() -> None:
    raw = encode_messages([OutputMessage("alerts", b"u", b"{}", [])])
    with pytest.raises(StateStoreError, match="truncated"):
        decode_messages(raw[:-1])
    with pytest.raises(StateStoreError, match="unknown format"):
        decode_messages(b"\x09" + raw[1:])


def test_reason_texts_read_like_an_analyst_wrote_them() -> None:
    row = {"seconds_since_last": 600.0}
    assert reason_text("amount_ratio_mean_30d", 9.42, row) == "amount 9.4x the user's 30-day mean"
    assert reason_text("dist_prev_km", 1200.0, row) == "1,200 km from the previous transaction 10 minutes earlier"
    assert reason_text("new_merchant", 1.0, row) == "first transaction at this merchant"
    assert reason_text("merchant_risk_7d", 0.35, row) == "merchant fraud rate 35% over the last 7 days (known labels)"
    assert reason_text("count_1h", 12.0, row) == "12 transactions by the user in the last hour"
    assert reason_text("something_new", 2.5, row) == "something new 2.50"
    assert reason_text("hour_sin", 1.0, {"hour_sin": 1.0, "hour_cos": 0.0}) == "at 06:00 UTC"


def test_top_reasons_are_the_largest_contributions_per_row() -> None:
    contributions = np.array([[0.1, 3.0, -5.0, 2.0], [np.nan, 0.0, 1.0, 0.5]])
    assert top_indices(contributions, 2).tolist() == [[1, 3], [2, 3]]
    reasons = explain(["amount", "count_1d", "new_device", "speed_kmh"], np.ones((2, 4)), contributions, 2)
    assert [[r.feature for r in row] for row in reasons] == [["count_1d", "speed_kmh"], ["new_device", "speed_kmh"]]


def test_holder_swaps_to_a_new_current_version_in_the_background(tmp_path: Path) -> None:
    first = publish_tiny_model(tmp_path, threshold=0.5)
    holder = ModelHolder(ModelRegistry(tmp_path, allow_unsigned=True), reload_poll_s=0.05).start()
    try:
        assert holder.version == first
        old_model = holder.model
        time.sleep(1.1)  # versions are named by the second
        second = publish_tiny_model(tmp_path, threshold=0.6, seed=1)
        deadline = time.monotonic() + 10
        while holder.version != second and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.version == second and holder.model.thresholds["stack"] == 0.6
        assert old_model.version == first  # a batch holding the old model keeps it unchanged
    finally:
        holder.stop()


def test_holder_keeps_the_old_model_when_a_new_version_is_tampered(tmp_path: Path) -> None:
    first = publish_tiny_model(tmp_path)
    holder = ModelHolder(ModelRegistry(tmp_path, allow_unsigned=True))
    time.sleep(1.1)
    second = publish_tiny_model(tmp_path, seed=2)
    (tmp_path / "versions" / second / "stack.skops").write_bytes(b"tampered")
    assert holder.check_once() is False
    assert holder.version == first and holder.last_error and "sha256" in holder.last_error


def test_user_ids_are_hmac_hashed_only_when_a_key_is_set() -> None:
    from fraudstream.settings import build_settings
    from streamer.runtime import user_key_for

    assert user_key_for(build_settings({}, environ={})) is None
    hashed = user_key_for(build_settings({"streamer": {"user_id_hmac_key": "s3cret"}}, environ={}))
    other = user_key_for(build_settings({"streamer": {"user_id_hmac_key": "other"}}, environ={}))
    assert hashed is not None and other is not None
    assert hashed("C001") == hashed("C001") != hashed("C002")
    assert hashed("C001") != other("C001") and "C001" not in hashed("C001") and len(hashed("C001")) == 64


def test_metrics_live_on_their_own_registry_and_count_a_batch() -> None:
    from streamer.core import BatchCounts, BatchResult, BatchTimings
    from streamer.metrics import StreamMetrics

    first, second = StreamMetrics(), StreamMetrics()  # no clash: no global default registry
    result = BatchResult([], BatchCounts(events=5, scored=4, alerts=1, late=1, dlq=2), BatchTimings(score_s=0.01), {})
    result.event_times_s, result.model_version = [100.0, 101.0], "v7"
    first.observe_batch(result)
    first.observe_committed(result, now_unix=102.0)
    text = first.exposition().decode()
    assert "fraudstream_events_total 5.0" in text and "fraudstream_alerts_total 1.0" in text
    assert "fraudstream_dead_letters_total 2.0" in text and 'version="v7"' in text
    assert "fraudstream_end_to_end_latency_seconds_count 2.0" in text
    assert "fraudstream_events_total 0.0" in second.exposition().decode()


def test_batch_histogram_exposes_what_prometheus_histogram_does() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from streamer.metrics import BatchHistogram

    buckets = (0.005, 0.05, 1.0, 60.0)
    values = [0.0, 0.005, 0.0051, 0.05, 0.7, 1.0, 59.0, 60.0, 61.0, 1e6]  # on, below and above each bound
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("lat_seconds", "doc", buckets=buckets, registry=theirs)
    for value in values:
        reference.observe(value)
    batch = BatchHistogram("lat_seconds", "doc", buckets, ours)
    batch.observe_many(values[:4])
    batch.observe_many([])
    batch.observe_many(values[4:])

    def samples(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    assert samples(ours) == samples(theirs)
    assert 'lat_seconds_bucket{le="0.05"} 4.0' in samples(ours)


def test_recent_values_keep_the_newest_in_a_fixed_array() -> None:
    from streamer.metrics import RecentValues

    recent = RecentValues(4)
    assert len(recent) == 0 and recent.values().size == 0
    recent.extend([1.0, 2.0, 3.0])
    assert sorted(recent.values()) == [1.0, 2.0, 3.0]
    recent.extend([4.0, 5.0])  # wraps: 1.0 is the oldest and goes
    assert sorted(recent.values()) == [2.0, 3.0, 4.0, 5.0] and len(recent) == 4
    recent.extend(np.arange(10.0, 20.0))  # more than the capacity at once: only the last four stay
    assert sorted(recent.values()) == [16.0, 17.0, 18.0, 19.0]
    recent.extend([])
    assert len(recent) == 4


def test_reasons_skip_encodings_duplicates_and_non_positive_contributions() -> None:
    names = ["hour_sin", "hour_cos", "category_bucket", "amount_ratio_mean_30d", "count_1d"]
    X = np.array([[1.0, 0.0, 21.0, 9.4, 3.0]])
    contributions = np.array([[0.9, 0.8, 0.95, 0.7, -0.2]])
    (row,) = explain(names, X, contributions, 3)
    assert [r.text for r in row] == ["at 06:00 UTC", "amount 9.4x the user's 30-day mean"]


def test_score_json_is_the_score_record_contract() -> None:
    from datetime import UTC, datetime

    from fraudstream.contracts import ScoreRecord, Transaction
    from streamer.outputs import score_json

    txn = Transaction(
        transaction_id='T"1\\é', user_id="C 1", timestamp=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), amount=1.0,
        merchant_id="M1",
    )  # fmt: skip
    now = datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)
    raw = score_json(txn, 0.123456789, 0.5, False, "v1", "mlp", now)
    expected = ScoreRecord(
        transaction_id=txn.transaction_id, user_id=txn.user_id, timestamp=txn.timestamp, score=0.123456789,
        threshold=0.5, alerted=False, model_version="v1", scorer="mlp", produced_at=now,
    )  # fmt: skip
    assert ScoreRecord.model_validate_json(raw) == expected
