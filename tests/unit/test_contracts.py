"""Wire contracts: validation rules, JSON round trips, committed JSON Schema files that must not drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from fraudstream.contracts import (
    CONTEXT_NOW,
    Alert,
    DeadLetter,
    Label,
    Reason,
    Transaction,
    alert_id_for,
)
from fraudstream.schema_files import SCHEMA_DIR, check_schema_files

GOOD = {
    "transaction_id": "t-1",
    "user_id": "u-1",
    "timestamp": "2024-03-01T12:00:00+01:00",
    "amount": 12.5,
    "merchant_id": "m-1",
}


def test_valid_transaction_is_normalised_to_utc() -> None:
    txn = Transaction.model_validate(GOOD)
    assert txn.timestamp == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert txn.currency == "EUR" and txn.channel is None and txn.latitude is None
    assert Transaction.model_validate_json(txn.model_dump_json()) == txn


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"amount": float("nan")}, "amount"),
        ({"amount": float("inf")}, "amount"),
        ({"amount": -0.01}, "amount"),
        ({"amount": 1e12}, "amount"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "outside"),
        ({"timestamp": "9999-01-01T00:00:00Z"}, "outside"),
        ({"timestamp": "2024-03-01T12:00:00"}, "timezone"),
        ({"user_id": ""}, "user_id"),
        ({"latitude": 10.0}, "together"),
        ({"latitude": 91.0, "longitude": 0.0}, "latitude"),
        ({"currency": "euro"}, "currency"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_transactions_are_rejected(change: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate({**GOOD, **change})
    assert fragment in str(info.value)


def test_nan_in_json_is_rejected() -> None:
    raw = json.dumps({**GOOD, "amount": float("nan")})  # json.dumps writes NaN
    with pytest.raises(ValidationError):
        Transaction.model_validate_json(raw)


def test_future_skew_uses_the_injected_now() -> None:
    now = datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    ahead = (now + timedelta(hours=2)).isoformat()
    with pytest.raises(ValidationError, match="in the future"):
        Transaction.model_validate({**GOOD, "timestamp": ahead}, context={CONTEXT_NOW: now})
    # Without a clock in the context only the fixed range applies (replays of history).
    assert Transaction.model_validate({**GOOD, "timestamp": ahead}).timestamp.hour == 13


def test_alert_id_is_deterministic_per_transaction() -> None:
    txn = Transaction.model_validate(GOOD)
    fields = {
        "score": 0.9, "threshold": 0.5, "model_version": "v1", "scorer": "mlp",
        "reasons": [Reason(feature="amount", value=1.0, contribution=0.5, text="amount high")],
        "features": {"amount": 1.0}, "produced_at": datetime(2024, 3, 1, tzinfo=UTC),
    }
    first, second = Alert.for_transaction(txn, **fields), Alert.for_transaction(txn, **fields)
    assert first.alert_id == second.alert_id == alert_id_for("t-1")
    assert alert_id_for("t-2") != first.alert_id


def test_dead_letter_keeps_original_bytes() -> None:
    raw = b"\xff\xfe not json"
    letter = DeadLetter.from_record(
        value=raw, key=b"u-1", headers=[("schema-version", b"1")], topic="transactions", partition=2,
        offset=41, error_class="DecodeError", error_message="bad utf-8", seen_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    back = DeadLetter.model_validate_json(letter.model_dump_json())
    assert back.original() == raw
    assert back.partition == 2 and back.offset == 41


def test_label_sources() -> None:
    label = Label(transaction_id="t", user_id="u", is_fraud=True, source="analyst",  # type: ignore[arg-type]
                  labelled_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert label.merchant_id is None
    with pytest.raises(ValidationError):
        Label(transaction_id="t", user_id="u", is_fraud=True, source="gossip",  # type: ignore[arg-type]
              labelled_at=datetime(2024, 1, 1, tzinfo=UTC))


def test_committed_schema_files_match_the_contracts() -> None:
    stale = check_schema_files()
    assert stale == [], f"run `fraudstream schemas` and commit {stale}"


def test_schema_drift_is_detected(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    for path in SCHEMA_DIR.glob("*.json"):
        (folder / path.name).write_text(path.read_text())
    doc = json.loads((folder / "transaction.schema.json").read_text())
    doc["properties"].pop("amount")
    (folder / "transaction.schema.json").write_text(json.dumps(doc))
    assert check_schema_files(folder) == ["transaction"]
