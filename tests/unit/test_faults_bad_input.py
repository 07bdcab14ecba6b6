"""Bad input through the core: a corpus of >= 2,000 malformed records interleaved with good ones, plus
property-based fuzzing of the decoder. Every bad record lands in the DLQ with a reason; every good one is scored."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.clock import ManualClock
from fraudstream.contracts import DeadLetter, ScoreRecord, Transaction
from fraudstream.settings import build_settings
from models.registry import ModelRegistry
from state.store import InMemoryFeatureStore
from streamer.core import RawRecord, StreamProcessor
from streamer.scoring import ModelHolder
from streamer.validation import ERROR_REASONS, MAX_DLQ_ORIGINAL_BYTES, DecodeFailure, decode_transaction
from tests.bad_input_corpus import corpus
from tests.streamer_support import publish_tiny_model, simulated_transactions, txn_headers

NOW = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("registry")
    publish_tiny_model(root)
    return ModelRegistry(root, allow_unsigned=True).load()


@pytest.fixture(scope="module")
def good() -> list[Transaction]:
    return simulated_transactions(customers=60, merchants=40, days=4, seed=9)


def test_corpus_covers_every_family_with_over_two_thousand_records(good: list[Transaction]) -> None:
    records = corpus(good)
    assert len(records) >= 2000
    kinds = " ".join(r.kind for r in records)
    for family in ("broken json", "wrong type", "missing", "bad amount", "bad timestamp", "invalid utf-8",
                   "empty", "unknown field", "empty key", "huge", "duplicate key amount", "duplicate key user_id",
                   "duplicate key transaction_id", "lax number amount", "lax number latitude", "lax timestamp",
                   "bad character user_id U+202E", "bad character device_id U+0000", "bad character merchant_category",
                   "U+007F", "U+0085", "U+200B", "U+FEFF", "surrounding space", "key mismatch", "bad header",
                   "label on transactions", "not one object", "bad number token"):
        assert family in kinds, family
    assert any(r.value is not None and len(r.value) >= 800_000 for r in records)
    assert any(r.key in (b"", None) for r in records)


def test_every_malformed_record_is_dead_lettered_and_the_good_around_them_scored(
    model: Any, good: list[Transaction]
) -> None:
    bad = corpus(good)
    processor = StreamProcessor(
        build_settings({"streamer": {"scorer": "stack"}}, environ={}),
        InMemoryFeatureStore(),
        ModelHolder.fixed(model),
        ManualClock(NOW),
    )
    records: list[RawRecord] = []
    expected_bad: dict[int, bytes | None] = {}
    good_ids = []
    g = 0
    for i, item in enumerate(bad):  # one good record between every two bad ones, offsets in order
        if i % 2 == 0 and g < len(good):
            txn = good[g]
            g += 1
            records.append(RawRecord("transactions", 0, len(records), txn.user_id.encode(),
                                     txn.model_dump_json().encode(), txn_headers()))
            good_ids.append(txn.transaction_id)
        expected_bad[len(records)] = item.value
        records.append(RawRecord("transactions", 0, len(records), item.key, item.value, list(item.headers)))
    dead: dict[int, DeadLetter] = {}
    scored: list[str] = []
    for lo in range(0, len(records), 500):  # poll-sized batches
        result = processor.process(records[lo : lo + 500])
        for message in result.messages:
            if message.topic == "transactions.dlq":
                letter = DeadLetter.model_validate_json(message.value)
                headers = dict(message.headers)
                assert headers["error-class"].decode() == letter.error_class
                assert headers["error-reason"].decode() == ERROR_REASONS[letter.error_class]
                assert headers["error-message"] and letter.error_message.encode().startswith(headers["error-message"])
                assert letter.offset not in dead, f"offset {letter.offset} dead-lettered twice"
                dead[letter.offset] = letter
            elif message.topic == "scores":
                scored.append(ScoreRecord.model_validate_json(message.value).transaction_id)
    assert set(dead) == set(expected_bad), f"not dead-lettered: {sorted(set(expected_bad) - set(dead))[:5]}"
    for offset, letter in dead.items():
        assert letter.error_class in ERROR_REASONS, letter.error_class
        assert letter.error_message.strip(), f"offset {offset} has no reason"
        original = expected_bad[offset] or b""
        assert letter.original() == original[:MAX_DLQ_ORIGINAL_BYTES]
        if len(original) > MAX_DLQ_ORIGINAL_BYTES:  # cut so the letter fits a Kafka record; says where the rest is
            assert hashlib.sha256(original).hexdigest() in letter.error_message
            assert f"transactions[0]@{offset}" in letter.error_message
    assert scored == good_ids


def _txn_strategy() -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                       st.text(max_size=40))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                            inner, max_size=3),
                         max_leaves=6)
    names = st.sampled_from(["transaction_id", "user_id", "timestamp", "amount", "currency", "merchant_id",
                             "merchant_category", "channel", "latitude", "longitude", "country", "device_id",
                             "surprise"])
    return st.dictionaries(names, value, max_size=13)


def _check(outcome: Transaction | DecodeFailure) -> None:
    if isinstance(outcome, DecodeFailure):
        assert outcome.error_class in ERROR_REASONS
        assert outcome.message.strip()
    else:
        assert math.isfinite(outcome.amount) and 0 <= outcome.amount <= 1e7
        assert outcome.timestamp.utcoffset() is not None and outcome.timestamp <= NOW.replace(year=2024, month=2)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_decoder_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    _check(decode_transaction(raw, NOW, 300.0))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_txn_strategy())
def test_decoder_never_raises_on_arbitrary_json_objects(data: dict[str, Any]) -> None:
    _check(decode_transaction(json.dumps(data, allow_nan=True).encode(), NOW, 300.0))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decoder_on_mutated_valid_records(good: list[Transaction], data: st.DataObject) -> None:
    txn = data.draw(st.sampled_from(good[:50]))
    raw = bytearray(txn.model_dump_json().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    _check(decode_transaction(bytes(raw), NOW, 300.0))
