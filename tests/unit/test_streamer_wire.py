"""The per-batch transaction decoder (streamer.wire's msgspec fast path with the pydantic fallback) gives the same
verdicts, reasons and values as the pydantic contract record by record (streamer.validation.decode_records)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudstream.contracts import Transaction
from streamer.core import RawRecord
from streamer.validation import DecodeFailure, decode_records, decode_transactions
from streamer.wire import TxnRows, fast_rows
from tests.bad_input_corpus import corpus
from tests.streamer_support import simulated_transactions, txn_headers

NOW = datetime(2024, 2, 1, tzinfo=UTC)
SKEW = 300.0
CONTEXT = {"now": NOW, "max_future_skew_s": SKEW}


@pytest.fixture(scope="module")
def good() -> list[Transaction]:
    return simulated_transactions(customers=40, merchants=30, days=3, seed=4)


def _record(i: int, value: bytes | None, key: bytes | None, headers: Any = None) -> RawRecord:
    return RawRecord("transactions", 0, i, key, value, list(txn_headers() if headers is None else headers))


def _assert_same(records: list[RawRecord]) -> tuple[int, int]:
    """decode_transactions against decode_records (the pydantic reference): same failures (class and message),
    same accepted records with equal columns. Returns (accepted, rejected)."""
    reference = decode_records(Transaction, records, CONTEXT)
    failures, rows = decode_transactions(records, NOW, SKEW)
    accepted = [i for i, item in enumerate(reference) if not isinstance(item, DecodeFailure)]
    assert rows.index == accepted
    assert {i: (f.error_class, f.message) for i, f in failures.items()} == {
        i: (item.error_class, item.message) for i, item in enumerate(reference) if isinstance(item, DecodeFailure)
    }
    expected = TxnRows.of(accepted, [reference[i] for i in accepted])  # type: ignore[misc]
    assert rows.transaction_id == expected.transaction_id
    assert rows.user_id == expected.user_id
    assert rows.merchant_id == expected.merchant_id
    assert rows.timestamp == expected.timestamp
    assert all(t.tzinfo is UTC for t in rows.timestamp)
    for name in expected.columns.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(rows.columns, name), getattr(expected.columns, name), err_msg=name)
    return len(accepted), len(failures)


def test_valid_simulated_traffic_takes_the_fast_path_and_equals_pydantic(good: list[Transaction]) -> None:
    values = [t.model_dump_json().encode() for t in good]
    fast = fast_rows(values, NOW, SKEW)
    assert fast is not None and fast[1] == []  # the whole batch proven by the fast path
    records = [_record(i, v, t.user_id.encode()) for i, (t, v) in enumerate(zip(good, values, strict=True))]
    assert _assert_same(records) == (len(good), 0)


def test_the_bad_input_corpus_alone_and_mixed_in_batches(good: list[Transaction]) -> None:
    bad = corpus(good, size=2400)
    for item_no, item in enumerate(bad):  # each alone
        _assert_same([_record(0, item.value, item.key, item.headers)])
        if item_no > 600:
            break
    records: list[RawRecord] = []
    for i, item in enumerate(bad):  # interleaved with good records, in batches of 40
        txn = good[i % len(good)]
        records.append(_record(len(records), txn.model_dump_json().encode(), txn.user_id.encode()))
        records.append(_record(len(records), item.value, item.key, item.headers))
    rejected = 0
    for lo in range(0, len(records), 40):
        rejected += _assert_same(records[lo : lo + 40])[1]
    assert rejected == len(bad)


def test_every_fast_path_guard_is_needed(good: list[Transaction]) -> None:
    """Records msgspec alone would accept (or read differently) that the contract refuses, each in a batch of
    good ones: the guards send them to pydantic, which refuses them."""
    base = json.loads(good[0].model_dump_json())
    sneaky = [
        {**base, "timestamp": "2024-01-01t00:00:00z"},  # lowercase: msgspec accepts
        {**base, "timestamp": "2024-01-01T00:00:00.1234567Z"},  # 7 digits: msgspec rounds
        {**base, "user_id": " padded"},
        {**base, "user_id": "padded "},
        {**base, "merchant_id": "del\x7f"},
        {**base, "device_id": "zero\u200bwidth"},
        {**base, "latitude": 1.0, "longitude": None},
        {**base, "timestamp": (NOW + timedelta(seconds=SKEW + 1)).isoformat().replace("+00:00", "Z")},
        {**base, "timestamp": "1999-12-31T23:59:59Z"},
    ]
    values = [json.dumps(v, separators=(",", ":")).encode() for v in sneaky]
    values.append(values[-1][:-1] + b',"amount":9999999}')  # a repeated key: msgspec keeps the last
    values.append(values[-1][:40])  # broken JSON: the joined batch does not parse
    values.append(b'{"transaction_id":"t1",{}:1}')  # a non-string key
    for value in values:
        txns = good[1:6]
        batch = [_record(i, t.model_dump_json().encode(), t.user_id.encode()) for i, t in enumerate(txns)]
        batch.append(_record(len(batch), value, base["user_id"].encode()))
        assert _assert_same(batch) == (len(txns), 1)


_plain_ids = st.text(st.sampled_from("abcXYZ0189-_:./ #"), min_size=1, max_size=10)
_ascii_ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12)
_ids = st.one_of(_plain_ids, _plain_ids, _plain_ids, _plain_ids, _ascii_ids, st.text(min_size=1, max_size=6))
_stamps = st.builds(
    lambda seconds, micros, digits, offset, sep: (
        (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros))
        .astimezone(offset)
        .strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        + (("." + f"{micros:06d}"[:digits]) if digits else "")
        + ("Z" if offset.utcoffset(None) == timedelta(0) and digits % 2 else
           (lambda o: f"{'+' if o >= timedelta(0) else '-'}{abs(o) // timedelta(hours=1):02d}:"
                      f"{abs(o) % timedelta(hours=1) // timedelta(minutes=1):02d}")(offset.utcoffset(None)))
    ),
    st.integers(-30 * 86_400, 40 * 86_400),
    st.integers(0, 999_999),
    st.integers(0, 7),
    st.sampled_from([UTC, *(__import__("datetime").timezone(timedelta(minutes=m)) for m in (-330, -60, 60, 345))]),
    st.sampled_from(["T"] * 7 + ["t"]),
)
_optional = {
    "currency": st.sampled_from(["EUR", "USD", "GBP", "eur", None]),
    "merchant_category": st.one_of(st.none(), _ids),
    "channel": st.sampled_from([None, "online", "atm", "card_present", "contactless", "bogus"]),
    "country": st.sampled_from([None, "FR", "DE", "NL", "fr", "FRA"]),
    "device_id": st.one_of(st.none(), _ids),
}


@st.composite
def _transaction(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transaction_id": draw(_ids),
        "user_id": draw(_ids),
        "timestamp": draw(_stamps),
        "amount": draw(st.one_of(st.floats(0, 1e7, allow_nan=False), st.floats(0, 1e7, allow_nan=False),
                                 st.floats(-1, 2e7, allow_nan=False), st.integers(-5, 10**8), st.just(True))),
        "merchant_id": draw(_ids),
    }
    for name, values in _optional.items():
        if draw(st.integers(0, 2)) == 0:
            out[name] = draw(values)
    if draw(st.booleans()):
        out["latitude"] = draw(st.floats(-90, 90, allow_nan=False) | st.floats(-100, 100, allow_nan=False))
        if draw(st.integers(0, 9)):
            out["longitude"] = draw(st.one_of(st.floats(-180, 180, allow_nan=False),
                                              st.floats(-200, 200, allow_nan=False), st.none()))
    return out


@pytest.fixture(scope="module")
def good_records(good: list[Transaction]) -> list[RawRecord]:
    return [_record(i, t.model_dump_json().encode(), t.user_id.encode()) for i, t in enumerate(good[:6])]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(_transaction(), min_size=1, max_size=6), st.booleans())
def test_generated_records_decode_as_the_contract_does(
    good_records: list[RawRecord], items: list[dict[str, Any]], spaced: bool
) -> None:
    """Each generated record in a batch of good ones (so the fast path sees it whenever msgspec accepts it), and
    all of them in one batch."""
    separators = (", ", ": ") if spaced else (",", ":")
    mine = [
        _record(len(good_records) + i, json.dumps(item, separators=separators, ensure_ascii=False).encode(),
                item["user_id"].encode())
        for i, item in enumerate(items)
    ]
    for record in mine:
        _assert_same([*good_records, record])
    _assert_same(mine)
