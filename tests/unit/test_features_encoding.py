"""State encodings round-trip exactly, stay compact, and refuse corrupt bytes; bad values never reach state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.config import FeatureConfig
from features.merchant import apply_fraud_label, update_merchant_tx
from features.offline import build_features, transactions_from_frame
from features.state import MerchantFraudRecord, MerchantTxRecord, MerchantView, UserState
from features.transform import update_user
from fraudstream.contracts import Transaction
from fraudstream.errors import InputError, StateStoreError
from state.batch import SourceRecord
from state.memory import InMemoryFeatureStore
from tests.feature_streams import START, synthetic_stream, txn

CFG = FeatureConfig()


def busy_user(days: int = 30, per_day: float = 3.5, located: bool = True) -> UserState:
    rng = np.random.default_rng(5)
    user = UserState()
    n = int(days * per_day)
    for i, s in enumerate(np.sort(rng.integers(0, days * 86_400, n))):
        extra = {"latitude": 50 + rng.random(), "longitude": 4 + rng.random()} if located else {}
        user = update_user(
            user,
            txn(
                when=START + timedelta(seconds=int(s)),
                amount=float(np.round(rng.lognormal(3.5, 1), 2)),
                merchant=f"m{rng.integers(0, 40)}",
                transaction_id=str(i),
                merchant_category=f"c{rng.integers(0, 12)}",
                device_id=f"d{rng.integers(0, 3)}",
                **extra,
            ),
            CFG,
        )
    return user


def test_user_state_round_trips_and_fits_the_memory_budget() -> None:
    user = busy_user()
    data = user.to_bytes()
    assert UserState.from_bytes(data) == user
    assert len(user.log_ts) == 105
    assert len(data) < 900  # 1 KB per active user in Redis, key and overhead included


def test_merchant_records_round_trip() -> None:
    rec = MerchantTxRecord()
    for ts in (1_700_000_000, 1_700_000_500, 1_699_999_000, 1_700_086_400):
        rec = update_merchant_tx(rec, ts, CFG)
    assert rec.tx_ts == tuple(sorted(rec.tx_ts))
    assert MerchantTxRecord.from_bytes(rec.to_bytes()) == rec
    frauds = MerchantFraudRecord()
    frauds = apply_fraud_label(frauds, 1_700_000_000, 1_700_600_000, 42, CFG)
    frauds = apply_fraud_label(frauds, 1_700_000_000, 1_700_500_000, 42, CFG)  # same transaction: earliest wins
    frauds = apply_fraud_label(frauds, 1_699_000_000, 1_698_000_000, 7, CFG)  # labelled_at before txn: clamped
    assert [(e.txn_ts, e.labelled_at) for e in frauds.entries] == [(1_699_000_000,) * 2, (1_700_000_000, 1_700_500_000)]
    assert MerchantFraudRecord.from_bytes(frauds.to_bytes()) == frauds
    view = MerchantView.merge([rec, MerchantTxRecord((1_700_000_001,))], [frauds])
    assert MerchantView.from_bytes(view.to_bytes()) == view
    assert view.tx_ts == tuple(sorted(view.tx_ts)) and len(view.tx_ts) == 5


@pytest.mark.parametrize("cut", [0, 1, 5, -1])
def test_corrupt_state_is_refused(cut: int) -> None:
    data = busy_user(days=2).to_bytes()
    broken = data[:cut] if cut >= 0 else data + b"\x00"
    with pytest.raises(StateStoreError):
        UserState.from_bytes(broken)
    with pytest.raises(StateStoreError, match="format"):
        UserState.from_bytes(b"\x63" + data[1:])


@pytest.mark.parametrize(
    "field, value",
    [
        ("amount", float("nan")),
        ("amount", float("inf")),
        ("amount", -1.0),
        ("amount", 2e7),
        ("timestamp", datetime(1999, 12, 31, tzinfo=UTC)),
        ("timestamp", datetime(2150, 1, 1, tzinfo=UTC)),
    ],
)
def test_bad_values_are_rejected_before_they_reach_state(field: str, value: object) -> None:
    store = InMemoryFeatureStore(CFG)
    good = txn()
    store.commit_batch(store.prepare_batch([SourceRecord(0, 0, good)]), [None])
    before = (dict(store.strings), {k: dict(v) for k, v in store.hashes.items()})
    with pytest.raises(ValidationError):
        bad = Transaction.model_validate({**good.model_dump(), field: value})
        store.commit_batch(store.prepare_batch([SourceRecord(0, 1, bad)]), [None])
    assert (store.strings, store.hashes) == before
    frame = pd.DataFrame([{**good.model_dump(), field: value}])
    with pytest.raises(InputError):
        build_features(frame, None, CFG)


def test_offline_frame_round_trips_through_transactions() -> None:
    frame = synthetic_stream(50)
    back = list(transactions_from_frame(frame))
    assert [t.transaction_id for t in back] == list(frame["transaction_id"])
    assert all(t.timestamp.tzinfo is not None for t in back)
    assert sum(t.latitude is None for t in back) == int(frame["latitude"].isna().sum())
