"""The strict wire contract (issue 13), one test per finding class: duplicate JSON keys, lax coercion of numbers,
booleans and timestamps, characters in identifiers and text, silent stripping, the Kafka key against user_id, the
headers; the DLQ headers; and the per-batch decoder, which must give exactly what per-record decoding gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fraudstream.contracts import Label, Transaction
from streamer.core import RawRecord
from streamer.validation import (
    ERROR_REASONS,
    DecodeFailure,
    dead_letter,
    decode_label,
    decode_records,
    decode_transaction,
    duplicate_key,
)

NOW = datetime(2024, 3, 2, tzinfo=UTC)
CTX = {"now": NOW, "max_future_skew_s": 300.0}
GOOD: dict[str, Any] = {
    "transaction_id": "t-1", "user_id": "u-1", "timestamp": "2024-03-01T12:00:00Z", "amount": 12.5,
    "currency": "EUR", "merchant_id": "m-1", "merchant_category": "grocery stores", "channel": "online",
    "latitude": 48.85, "longitude": 2.35, "country": "FR", "device_id": "D-1",
}
HEADERS: list[tuple[str, bytes | None]] = [("schema-version", b"1"), ("record-type", b"transaction")]


def _raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _record(value: bytes | None, key: bytes | None = b"u-1", headers: list[tuple[str, bytes | None]] | None = None,
            offset: int = 0) -> RawRecord:
    return RawRecord("transactions", 0, offset, key, value, HEADERS if headers is None else headers)


def _one(value: bytes | None, key: bytes | None = b"u-1",
         headers: list[tuple[str, bytes | None]] | None = None) -> Transaction | DecodeFailure:
    return decode_records(Transaction, [_record(value, key, headers)], CTX)[0]


def _rejected(value: bytes, error_class: str | None = None, key: bytes | None = b"u-1") -> DecodeFailure:
    outcome = _one(value, key)
    assert isinstance(outcome, DecodeFailure), f"accepted: {value!r}"
    if error_class is not None:
        assert outcome.error_class == error_class, outcome
    assert outcome.message.strip()
    return outcome


def test_the_good_record_is_accepted_exactly_as_sent() -> None:
    txn = _one(_raw(GOOD))
    assert isinstance(txn, Transaction)
    assert txn.merchant_category == "grocery stores" and txn.amount == 12.5
    assert txn.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert isinstance(_one(_raw({**GOOD, "amount": 12})), Transaction)  # an integer is a number


# -- duplicate keys


@pytest.mark.parametrize(
    "value",
    [
        b'{"amount": 12.5, "amount": 9999999, ' + _raw(GOOD)[1:].replace(b'"amount": 12.5, ', b""),
        _raw(GOOD)[:-1] + b', "user_id": "u-2"}',
        _raw(GOOD)[:-1] + b', "transaction_id": "t-2"}',
        _raw(GOOD)[:-1] + b', "\\u0061mount": 1}',  # escaped: the same key once decoded
        _raw(GOOD)[:-1] + b', "user\\u005fid" : "u-1"}',
        _raw(GOOD)[:-1] + b',\n"amount"\t:\n12.5}',
    ],
)
def test_duplicate_keys_are_rejected(value: bytes) -> None:
    _rejected(value, "DuplicateKey")


def test_duplicate_key_finds_the_first_repeated_key_and_nothing_in_values() -> None:
    assert duplicate_key(b'{"a": 1, "b": "\\"a\\":", "a": 2}') == "a"
    assert duplicate_key(_raw({**GOOD, "merchant_category": '"amount": 1'})) is None
    assert isinstance(_one(_raw({**GOOD, "merchant_category": '"amount": 1, "amount"'})), Transaction)


# -- lax coercion


@pytest.mark.parametrize("value", [True, False, "12.5", " 12.5 ", "1_000", "1e3", None, [12.5], {"v": 1}])
def test_amount_must_be_a_json_number(value: Any) -> None:
    _rejected(_raw({**GOOD, "amount": value}), "SchemaViolation")


@pytest.mark.parametrize("name", ["latitude", "longitude"])
@pytest.mark.parametrize("value", [True, "1.0", " 1"])
def test_coordinates_must_be_json_numbers(name: str, value: Any) -> None:
    _rejected(_raw({**GOOD, name: value}), "SchemaViolation")


def test_label_is_fraud_must_be_a_json_boolean() -> None:
    label = {"transaction_id": "t", "user_id": "u", "is_fraud": True, "source": "analyst",
             "labelled_at": "2024-01-01T00:00:00Z"}
    assert isinstance(decode_label(_raw(label)), Label)
    for lax in (1, 0, "true", "yes", "1", None):
        assert isinstance(decode_label(_raw({**label, "is_fraud": lax})), DecodeFailure), lax
    assert isinstance(decode_label(_raw({**label, "labelled_at": 1704067200})), DecodeFailure)


@pytest.mark.parametrize(
    "value",
    [
        1709294400, 1709294400000, 1709294400.5, "1709294400", "1709294400000", True,
        "2024-03-01t12:00:00Z", "2024-03-01T12:00:00z", "2024-03-01 12:00:00Z", "2024-03-01T12:00:00",
        "2024-03-01T12:00:00.1234567Z", "2024-03-01T12:00:00.123456789Z", "2024-03-01T12:00Z",
        "2024-03-01T12:00:00+0100", "2024-03-01T12:00:00+01", "2024-03-01T12:00:00,5Z", "20240301T120000Z",
        " 2024-03-01T12:00:00Z", "2024-03-01T12:00:00Z ", "2024-03-01T12:00:00Z\n", "2024-02-30T12:00:00Z",
        "2024-03-01T24:00:00Z", "2024-03-01T12:00:60Z", "2024-03-01T12:00:00.Z",
        "\uff12\uff10\uff12\uff14-03-01T12:00:00Z",
    ],
)
def test_timestamps_only_rfc3339_with_offset_and_at_most_microseconds(value: Any) -> None:
    _rejected(_raw({**GOOD, "timestamp": value}), "SchemaViolation")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T13:00:00+01:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T07:00:00.5-05:00", datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-03-01T12:00:00.123456Z", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_accepted_timestamp_forms(value: str, expected: datetime) -> None:
    txn = _one(_raw({**GOOD, "timestamp": value}))
    assert isinstance(txn, Transaction) and txn.timestamp == expected and txn.timestamp.tzinfo == UTC


def test_python_construction_still_takes_aware_datetimes_and_rejects_naive_ones() -> None:
    txn = Transaction(transaction_id="t", user_id="u", timestamp=datetime(2024, 1, 1, tzinfo=UTC), amount=1,
                      merchant_id="m")
    assert txn.timestamp.tzinfo == UTC
    with pytest.raises(ValidationError):
        Transaction(transaction_id="t", user_id="u", timestamp=datetime(2024, 1, 1), amount=1, merchant_id="m")


# -- characters and stripping

BAD_CHARS = ["\x00", "\x1b", "\x07", "\t", "\n", "\r", "\x7f", "\x85", "\x9f", "\u202e", "\u202a", "\u2066",
             "\u200e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u2028", "\u00a0", "\u3000",
             "\ue000", "\U000e0001"]


@pytest.mark.parametrize("name", ["transaction_id", "user_id", "merchant_id", "device_id", "merchant_category"])
@pytest.mark.parametrize("char", BAD_CHARS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARS])
def test_control_format_bidi_and_zero_width_characters_are_rejected(name: str, char: str) -> None:
    for bad in (f"a{char}b", f"{char}ab", f"ab{char}", char):
        key = bad.encode() if name == "user_id" else b"u-1"
        _rejected(_raw({**GOOD, name: bad}), "SchemaViolation", key=key)


@pytest.mark.parametrize("name", ["transaction_id", "user_id", "merchant_id", "device_id", "merchant_category"])
@pytest.mark.parametrize("fmt", [" {}", "{} ", "  {}  ", " "])
def test_surrounding_spaces_are_rejected_not_stripped(name: str, fmt: str) -> None:
    bad = fmt.format("x1")
    key = bad.encode() if name == "user_id" else b"u-1"
    _rejected(_raw({**GOOD, name: bad}), "SchemaViolation", key=key)


def test_printable_unicode_and_inner_spaces_are_kept_as_sent() -> None:
    txn = _one(_raw({**GOOD, "user_id": "Zoë 42", "merchant_category": "café & bar", "device_id": 'a"b\\c'}),
               key="Zoë 42".encode())
    assert isinstance(txn, Transaction)
    assert (txn.user_id, txn.merchant_category, txn.device_id) == ("Zoë 42", "café & bar", 'a"b\\c')


# -- the Kafka key


@pytest.mark.parametrize("key", [None, b"", b"u-2", b"u-1 ", b" u-1", b"U-1", b"\xffu-1", b"u-1\x00", b"u-"])
def test_a_key_that_is_not_the_user_id_is_a_key_mismatch(key: bytes | None) -> None:
    failure = _rejected(_raw(GOOD), "KeyMismatch", key=key)
    assert failure.reason == "key-mismatch" and failure.message.startswith("key-mismatch")


def test_a_non_ascii_user_id_matches_its_utf8_key() -> None:
    assert isinstance(_one(_raw({**GOOD, "user_id": "Žan"}), key="Žan".encode()), Transaction)


# -- headers


@pytest.mark.parametrize(
    "headers",
    [
        [("schema-version", b"999")], [("schema-version", b"\xff\xfe")], [("schema-version", None)],
        [("schema-version", b"")], [("schema-version", b"1 ")], [("schema-version", b"1"), ("schema-version", b"2")],
        [("record-type", b"label")], [("record-type", None)], [("record-type", b"Transaction")],
        [("schema-version", b"1"), ("record-type", b"score")],
    ],
)
def test_unknown_schema_version_or_wrong_record_type_is_rejected(headers: list[tuple[str, bytes | None]]) -> None:
    failure = _one(_raw(GOOD), headers=headers)
    assert isinstance(failure, DecodeFailure) and failure.error_class == "InvalidHeader"
    assert failure.reason == "invalid-header"


def test_absent_headers_mean_the_current_version_and_other_headers_are_ignored() -> None:
    assert isinstance(_one(_raw(GOOD), headers=[]), Transaction)
    assert isinstance(_one(_raw(GOOD), headers=[("trace-id", b"x"), ("record-type", b"transaction")]), Transaction)


def test_labels_check_their_record_type() -> None:
    label = _raw({"transaction_id": "t", "user_id": "u", "is_fraud": False, "source": "customer",
                  "labelled_at": "2024-01-01T00:00:00Z"})
    ok = RawRecord("labels", 0, 0, b"u", label, [("schema-version", b"1"), ("record-type", b"label")])
    wrong = RawRecord("labels", 0, 1, b"u", label, [("record-type", b"transaction")])
    got = decode_records(Label, [ok, wrong], None, False)
    assert isinstance(got[0], Label) and isinstance(got[1], DecodeFailure) and got[1].error_class == "InvalidHeader"


# -- the DLQ message


def test_dead_letter_headers_carry_class_reason_message_and_position() -> None:
    record = _record(_raw(GOOD), key=b"nope", offset=17)
    failure = _one(record.value, record.key)
    assert isinstance(failure, DecodeFailure)
    message = dead_letter(record, failure, NOW, "transactions.dlq")
    headers = dict(message.headers)
    assert headers["error-class"] == b"KeyMismatch" and headers["error-reason"] == b"key-mismatch"
    assert headers["error-message"].startswith(b"key-mismatch")
    assert (headers["error-topic"], headers["error-partition"], headers["error-offset"]) == (b"transactions", b"0",
                                                                                            b"17")
    assert headers["schema-version"] == b"1" and headers["record-type"] == b"dead_letter"
    assert set(ERROR_REASONS.values()) >= {"key-mismatch", "duplicate-key", "invalid-header", "schema-violation"}


# -- the per-batch decoder


def test_values_that_are_not_exactly_one_object_cannot_pass_through_the_batch() -> None:
    good = _raw(GOOD)
    body = good[1:]
    attacks = [
        [good[:-1] + b',"x":"},{"}', good],
        [good + b"," + good, good],
        [good[:-1], b'}'],  # one object split over two records
        [good[:30], b'"' + body],
        [good[:-1] + b',"device_id":"x', b'y"}'],  # a string spanning two records
        [b"[" + good + b"]", good],
        [good + b" ,", good],
    ]
    for values in attacks:
        records = [_record(v, offset=i) for i, v in enumerate(values)]
        batch = decode_records(Transaction, records, CTX)
        alone = [decode_records(Transaction, [r], CTX)[0] for r in records]
        assert batch == alone, values
        assert isinstance(batch[0], DecodeFailure), values


_CHARS = st.sampled_from(["a", "Z", "0", " ", "é", "\x00", "\t", "\u202e", "\u200b", "\ufeff", '"', "\\", ",",
                          "{", "}"])
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "transaction_id": st.text(_CHARS, min_size=0, max_size=6),
    "user_id": st.just("u-1") | st.text(_CHARS, max_size=4),
    "timestamp": st.sampled_from(["2024-03-01T12:00:00Z", "2024-03-01T12:00:00.5+01:00", "2024-03-01t12:00:00z",
                                  "1709294400", "2024-03-01T12:00:00.1234567Z"]) | st.integers(0, 2 * 10**12),
    "amount": st.one_of(st.floats(-1, 2e7), st.integers(-5, 10**8), st.booleans(), st.just("12.5")),
    "latitude": st.one_of(st.floats(-100, 100), st.booleans(), st.none()),
    "longitude": st.one_of(st.floats(-200, 200), st.booleans(), st.none()),
    "device_id": st.one_of(st.none(), st.text(_CHARS, max_size=5)),
    "merchant_category": st.one_of(st.none(), st.text(_CHARS, max_size=5)),
}


@st.composite
def _values(draw: st.DrawFn) -> bytes:
    data = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(sorted(_FIELD_VALUES)), max_size=3, unique=True)):
        data[name] = draw(_FIELD_VALUES[name])
    raw = json.dumps(data, ensure_ascii=draw(st.booleans())).encode()
    mutation = draw(st.sampled_from(["none", "none", "dup", "cut", "two", "join"]))
    if mutation == "dup":
        raw = raw[:-1] + b', "amount": 1}'
    elif mutation == "cut":
        raw = raw[: draw(st.integers(1, len(raw) - 1))]
    elif mutation == "two":
        raw = raw + b"," + raw
    elif mutation == "join":
        raw = raw[:-1] + b',"device_id":"},{"}'
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_values(), st.sampled_from([b"u-1", b"u-2", None])), min_size=1, max_size=12))
def test_batch_decoding_equals_record_by_record_decoding(items: list[tuple[bytes, bytes | None]]) -> None:
    records = [_record(value, key, offset=i) for i, (value, key) in enumerate(items)]
    batch = decode_records(Transaction, records, CTX)
    alone = [decode_records(Transaction, [record], CTX)[0] for record in records]
    assert batch == alone
    for record, outcome in zip(records, alone, strict=True):  # the one-record path is the plain contract
        plain = decode_transaction(record.value, NOW, 300.0)
        if isinstance(outcome, Transaction):
            assert plain == outcome
