"""The core alone: InMemoryFeatureStore + a real small model from a real registry."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudstream.clock import ManualClock
from fraudstream.contracts import Alert, DeadLetter, Label, LabelSource, ScoreRecord, Transaction, alert_id_for
from fraudstream.settings import Settings, build_settings
from models.registry import ModelRegistry
from state.store import InMemoryFeatureStore
from streamer.core import LATE_REASON_HEADER, RawRecord, StreamProcessor
from streamer.scoring import ModelHolder
from tests.streamer_support import publish_tiny_model, simulated_transactions, txn_headers

NOW = datetime(2024, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    publish_tiny_model(root)
    return root


@pytest.fixture(scope="module")
def model(registry_root: Path) -> Any:
    return ModelRegistry(registry_root, allow_unsigned=True).load()


@pytest.fixture(scope="module")
def txns() -> list[Transaction]:
    return simulated_transactions()


def make_settings(**streamer: Any) -> Settings:
    return build_settings({"streamer": {"scorer": "stack", **streamer}}, environ={})


def make_processor(model: Any, store: InMemoryFeatureStore | None = None, **streamer: Any) -> StreamProcessor:
    return StreamProcessor(
        make_settings(**streamer), store or InMemoryFeatureStore(), ModelHolder.fixed(model), ManualClock(NOW)
    )


def raw_txn(txn: Transaction, offset: int, partition: int = 0) -> RawRecord:
    return RawRecord(
        "transactions", partition, offset, txn.user_id.encode(), txn.model_dump_json().encode(), txn_headers()
    )


def raw_value(value: bytes | None, offset: int, topic: str = "transactions") -> RawRecord:
    return RawRecord(topic, 0, offset, b"k", value, [("schema-version", b"1")])


def by_topic(messages: list[Any], topic: str) -> list[Any]:
    return [m for m in messages if m.topic == topic]


def test_good_records_are_scored_and_large_amounts_alerted(model: Any, txns: list[Transaction]) -> None:
    result = make_processor(model).process([raw_txn(t, i) for i, t in enumerate(txns)])
    scores = [ScoreRecord.model_validate_json(m.value) for m in by_topic(result.messages, "scores")]
    assert [s.transaction_id for s in scores] == [t.transaction_id for t in txns]
    alerts = [Alert.model_validate_json(m.value) for m in by_topic(result.messages, "alerts")]
    assert result.counts.alerts == len(alerts) > 0
    assert {a.transaction.transaction_id for a in alerts} == {s.transaction_id for s in scores if s.alerted}
    assert all(s.score >= s.threshold for s in scores if s.alerted)
    assert all(s.score < s.threshold for s in scores if not s.alerted)
    big = {t.transaction_id for t in txns if t.amount > 400}
    assert big and big <= {a.transaction.transaction_id for a in alerts}
    for alert in alerts:
        assert alert.alert_id == alert_id_for(alert.transaction.transaction_id)
        assert alert.model_version == model.version
        assert 1 <= len(alert.reasons) <= 3 and all(r.text for r in alert.reasons)
        # the scorer's own attributions: they sum with the base value to the score (rounded to 9 decimals)
        assert alert.explanation is not None and alert.explanation.space == "probability"
        total = alert.explanation.base_value + sum(alert.explanation.attributions.values())
        assert abs(total - alert.score) <= 1e-6
        assert {r.feature for r in alert.reasons} <= set(alert.explanation.attributions)
        for r in alert.reasons:
            assert r.contribution == pytest.approx(alert.explanation.attributions[r.feature], abs=1e-9)
        assert set(alert.features) <= set(model.feature_names)
        assert alert.produced_at == NOW
    assert result.next_offsets == {("transactions", 0): len(txns)}
    users = {t.transaction_id: t.user_id.encode() for t in txns}
    assert all(
        m.key == users[s.transaction_id] for m, s in zip(by_topic(result.messages, "scores"), scores, strict=True)
    )


BAD_VALUES = {
    "broken json": (b'{"transaction_id": "x", ', "InvalidJson"),
    "invalid utf-8": (b'{"transaction_id": "\xff\xfe"}', "InvalidUtf8"),
    "empty value": (b"", "EmptyRecord"),
    "null value": (None, "EmptyRecord"),
    "json array": (b"[1, 2]", "SchemaViolation"),
}


def _txn_json(base: Transaction, **changes: Any) -> bytes:
    data = json.loads(base.model_dump_json())
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data, allow_nan=True).encode()


_DROP = object()
BAD_FIELDS = {
    "wrong type amount": {"amount": "lots"},
    "missing user_id": {"user_id": _DROP},
    "NaN amount": {"amount": float("nan")},
    "negative amount": {"amount": -5.0},
    "huge amount": {"amount": 1e12},
    "year 1": {"timestamp": "0001-01-01T00:00:00Z"},
    "year 9999": {"timestamp": "9999-12-31T00:00:00Z"},
    "far future vs clock": {"timestamp": (NOW + timedelta(days=2)).isoformat()},
    "unknown field": {"surprise": 1},
}


@pytest.mark.parametrize("kind", list(BAD_VALUES) + list(BAD_FIELDS))
def test_bad_input_goes_to_dlq_and_neighbours_are_scored(model: Any, txns: list[Transaction], kind: str) -> None:
    good = txns[:6]
    if kind in BAD_VALUES:
        bad_value, expected_class = BAD_VALUES[kind]
    else:
        bad_value, expected_class = _txn_json(txns[6], **BAD_FIELDS[kind]), "SchemaViolation"
    records = [raw_txn(t, i) for i, t in enumerate(good[:3])]
    records.append(raw_value(bad_value, 3))
    records += [raw_txn(t, i + 4) for i, t in enumerate(good[3:])]
    result = make_processor(model).process(records)
    dlq = [DeadLetter.model_validate_json(m.value) for m in by_topic(result.messages, "transactions.dlq")]
    assert len(dlq) == result.counts.dlq == 1
    letter = dlq[0]
    assert letter.error_class == expected_class and letter.error_message
    assert (letter.topic, letter.partition, letter.offset) == ("transactions", 0, 3)
    assert letter.original() == (bad_value or b"")
    assert letter.headers == [("schema-version", "MQ==")]
    scored = [ScoreRecord.model_validate_json(m.value).transaction_id for m in by_topic(result.messages, "scores")]
    assert scored == [t.transaction_id for t in good]
    assert result.messages.index(by_topic(result.messages, "transactions.dlq")[0]) > 0  # input order kept
    assert result.next_offsets == {("transactions", 0): 7}


def test_far_future_is_judged_against_the_injected_clock(model: Any, txns: list[Transaction]) -> None:
    ahead = txns[0].model_copy(update={"timestamp": NOW + timedelta(seconds=200)})
    result = make_processor(model, max_future_skew_s=300).process([raw_txn(ahead, 0)])
    assert result.counts.dlq == 0 and result.counts.scored == 1
    result = make_processor(model, max_future_skew_s=100).process([raw_txn(ahead, 0)])
    assert result.counts.dlq == 1


def test_replay_re_emits_identical_bytes(model: Any, txns: list[Transaction]) -> None:
    store = InMemoryFeatureStore()
    records = [raw_txn(t, i) for i, t in enumerate(txns[:120])]
    records.insert(50, raw_value(b"not json", 9999))
    first = make_processor(model, store).process(records[:80])
    clock = ManualClock(NOW + timedelta(hours=3))  # a later restart: produced_at must still be the cached one
    again = StreamProcessor(make_settings(), store, ModelHolder.fixed(model), clock).process(records)
    assert again.counts.replayed == 79 and again.counts.scored == 120 - 79
    kept = [m.value for m in first.messages if m.topic != "transactions.dlq"]
    replayed = [m.value for m in again.messages if m.topic != "transactions.dlq"]
    assert replayed[: len(kept)] == kept
    assert len(by_topic(again.messages, "transactions.dlq")) == 1  # bad records are judged again, not cached


def test_late_records_are_routed_not_scored(model: Any, txns: list[Transaction]) -> None:
    user = txns[0]
    on_time = user.model_copy(update={"transaction_id": "A", "timestamp": NOW - timedelta(hours=1)})
    late = user.model_copy(update={"transaction_id": "B", "timestamp": NOW - timedelta(hours=5)})
    result = make_processor(model).process([raw_txn(on_time, 0), raw_txn(late, 1)])
    assert result.counts.late == 1 and result.counts.scored == 1
    routed = by_topic(result.messages, "transactions.late")
    assert len(routed) == 1 and Transaction.model_validate_json(routed[0].value).transaction_id == "B"
    assert any(name == LATE_REASON_HEADER for name, _ in routed[0].headers)
    assert all(json.loads(m.value)["transaction_id"] == "A" for m in by_topic(result.messages, "scores"))


class CountingModel:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.version = inner.version
        self.feature_names = inner.feature_names
        self.thresholds = inner.thresholds
        self.calls: list[int] = []

    def score(self, X: np.ndarray, scorer: Any, blend_mlp_weight: float = 0.5) -> np.ndarray:
        self.calls.append(len(X))
        return np.asarray(self.inner.score(X, scorer, blend_mlp_weight))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.contributions(X))

    def serving_policy(self, scorer: str | None = None, blend_mlp_weight: float | None = None) -> Any:
        return self.inner.serving_policy(scorer, blend_mlp_weight)

    def attributions(
        self, X: np.ndarray, scorer: Any = "mlp", blend_mlp_weight: float = 0.5, mlp_method: str = "deeplift"
    ) -> Any:
        return self.inner.attributions(X, scorer, blend_mlp_weight, mlp_method)


def test_scoring_is_micro_batched(model: Any, txns: list[Transaction]) -> None:
    counting = CountingModel(model)
    records = [raw_txn(t, i) for i, t in enumerate(txns)]
    StreamProcessor(
        make_settings(micro_batch_max_size=100), InMemoryFeatureStore(), ModelHolder.fixed(counting), ManualClock(NOW)
    ).process(records)
    assert counting.calls == [100, 100, len(txns) - 200]
    assert len(counting.calls) == math.ceil(len(txns) / 100)


def test_labels_are_applied_and_bad_labels_dead_lettered(model: Any, txns: list[Transaction]) -> None:
    store = InMemoryFeatureStore()
    label = Label(
        transaction_id=txns[0].transaction_id,
        user_id=txns[0].user_id,
        is_fraud=True,
        source=LabelSource.dataset,
        labelled_at=NOW,
        merchant_id=txns[0].merchant_id,
        transaction_timestamp=txns[0].timestamp,
    )
    records = [
        raw_txn(txns[0], 0),
        raw_value(label.model_dump_json().encode(), 0, topic="labels"),
        raw_value(b'{"is_fraud": "maybe"}', 1, topic="labels"),
    ]
    result = make_processor(model, store).process(records)
    assert result.counts.labels == 1 and result.counts.dlq == 1 and result.counts.scored == 1
    assert result.next_offsets == {("transactions", 0): 1, ("labels", 0): 2}
    assert store.counters["labels_applied"] + store.counters["labels_unusable"] == 1


def test_a_re_sent_transaction_is_dead_lettered_not_folded_or_scored_twice(
    model: Any, txns: list[Transaction]
) -> None:
    """The bank bus re-sends a transaction (same id, a new offset): in the same batch and in a later one. Each copy
    goes to the DLQ with reason `duplicate`, the user's state counts it once, and its score is emitted once."""
    store = InMemoryFeatureStore()
    processor = make_processor(model, store)
    user = txns[0].user_id
    mine = [t for t in txns if t.user_id == user][:4]
    first = processor.process([raw_txn(t, i) for i, t in enumerate(mine)] + [raw_txn(mine[1], 4)])
    assert first.counts.scored == 4 and first.counts.duplicates == first.counts.dlq == 1
    again = processor.process([raw_txn(mine[2], 5), raw_txn(mine[3], 6)])
    assert again.counts.scored == 0 and again.counts.duplicates == 2
    letters = [DeadLetter.model_validate_json(m.value) for r in (first, again)
               for m in by_topic(r.messages, "transactions.dlq")]  # fmt: skip
    assert [(d.offset, d.error_class) for d in letters] == [(4, "DuplicateTransaction"), (5, "DuplicateTransaction"),
                                                            (6, "DuplicateTransaction")]  # fmt: skip
    assert "0@1" in letters[0].error_message and mine[1].transaction_id in letters[0].error_message
    scored = [ScoreRecord.model_validate_json(m.value).transaction_id for r in (first, again)
              for m in by_topic(r.messages, "scores")]  # fmt: skip
    assert sorted(scored) == sorted(t.transaction_id for t in mine)
    state = store.user_state(user)
    assert state is not None and state.n_total == 4
    replay = make_processor(model, store).process([raw_txn(mine[2], 5), raw_txn(mine[3], 6)])  # a crash: re-read
    assert replay.counts.replayed == 2 and [m.value for m in replay.messages] == [m.value for m in again.messages]
