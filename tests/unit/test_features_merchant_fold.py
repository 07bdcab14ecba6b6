"""The compiled merchant fold equals the reference (`features.merchant`) value for value and byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.config import DAY_S, FeatureConfig
from features.merchant import apply_fraud_label, merchant_features, update_merchant_tx, view_with_tx
from features.merchant_fold import fold_merchant_batch
from features.state import MerchantFraudRecord, MerchantTxRecord, MerchantView
from fraudstream.errors import StateStoreError

T0 = 1_700_000_000
PARTS, LABEL_PARTS = 3, 2


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[list[MerchantTxRecord]], list[list[MerchantFraudRecord]], list, int]:
    cfg = FeatureConfig(label_delay_s=draw(st.sampled_from([0, DAY_S, 7 * DAY_S])))
    n_merchants = draw(st.integers(1, 3))
    span = st.integers(T0 - 60 * DAY_S, T0)
    txs, frauds = [], []
    for _ in range(n_merchants):
        parts = []
        for _ in range(PARTS):
            rec = MerchantTxRecord()
            for t in draw(st.lists(span, max_size=15)):
                rec = update_merchant_tx(rec, t, cfg)
            parts.append(rec)
        txs.append(parts)
        labels = []
        for _ in range(LABEL_PARTS):
            rec = MerchantFraudRecord()
            for k, t in enumerate(draw(st.lists(span, max_size=6))):
                rec = apply_fraud_label(rec, t, t + draw(st.integers(0, 20 * DAY_S)), k, cfg)
            labels.append(rec)
        frauds.append(labels)
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_merchants - 1),
                st.integers(0, PARTS - 1),
                st.integers(T0 - 40 * DAY_S, T0 + 40 * DAY_S),
                st.booleans(),
            ),
            min_size=1,
            max_size=40,
        )
    )
    return txs, frauds, events, cfg.delay_s


def reference(txs, frauds, events, cfg):  # type: ignore[no-untyped-def]
    views = [MerchantView.merge(t, f) for t, f in zip(txs, frauds, strict=True)]
    records = [list(t) for t in txs]
    horizon = max(e[2] for e in events) - cfg.delay_s
    rows, changed = [], set()
    for m, p, ts, late in events:
        rows.append(merchant_features(views[m], ts, cfg))
        if late:
            continue
        records[m][p] = update_merchant_tx(records[m][p], ts, cfg)
        changed.add((m, p))
        if ts <= horizon:
            views[m] = view_with_tx(views[m], ts)
    return np.asarray(rows), {(m, p): records[m][p].to_bytes() for m, p in changed}


@settings(max_examples=300, deadline=None)
@given(batches())
def test_merchant_fold_equals_the_reference(batch) -> None:  # type: ignore[no-untyped-def]
    txs, frauds, events, delay = batch
    cfg = FeatureConfig(label_delay_s=delay)
    want_rows, want_records = reference(txs, frauds, events, cfg)
    got = fold_merchant_batch(
        [[r.to_bytes() if r.tx_ts else b"" for r in parts] for parts in txs],
        [[r.to_bytes() if r.entries else b"" for r in parts] for parts in frauds],
        np.asarray([e[0] for e in events], dtype=np.int64),
        np.asarray([e[1] for e in events], dtype=np.int64),
        np.asarray([e[2] for e in events], dtype=np.int64),
        np.asarray([e[3] for e in events], dtype=bool),
        cfg,
    )
    np.testing.assert_array_equal(got.features, want_rows)
    assert got.records == want_records


@pytest.mark.parametrize("which", ["tx", "fraud"])
def test_a_corrupt_merchant_record_is_refused(which: str) -> None:
    cfg = FeatureConfig()
    tx = update_merchant_tx(MerchantTxRecord(), T0, cfg).to_bytes()
    fraud = apply_fraud_label(MerchantFraudRecord(), T0, T0 + 10, 1, cfg).to_bytes()
    bad_tx, bad_fraud = (tx[:-1], fraud) if which == "tx" else (tx, fraud + b"\x00")
    one = np.zeros(1, dtype=np.int64)
    with pytest.raises(StateStoreError, match=which if which == "fraud" else "transaction"):
        fold_merchant_batch([[bad_tx]], [[bad_fraud]], one, one, one + T0, np.zeros(1, dtype=bool), cfg)
