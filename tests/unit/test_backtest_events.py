"""The replayed stream: labels at tx time + delay, labels first on ties, partitions and offsets, valid contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from backtest.events import LABEL, TRANSACTION, EventStream
from fraudstream.settings import TopicSettings
from streamer.validation import decode_label, decode_transaction

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _frame() -> pd.DataFrame:
    ts = pd.to_datetime(
        ["2024-01-01 00:00:00", "2024-01-01 12:00:00", "2024-01-02 00:00:00", "2024-01-03 00:00:00"], utc=True
    )
    return pd.DataFrame(
        {
            "transaction_id": ["t0", "t1", "t2", 't"3'],
            "user_id": ["u0", "u1", "u0", "u2"],
            "timestamp": ts,
            "amount": [10.5, 0.1, 99999.99, 3.0],
            "currency": ["EUR"] * 4,
            "merchant_id": ["m0", "m1", "m0", "m2"],
            "channel": [None, "online", None, None],
            "latitude": [np.nan, 48.5, np.nan, np.nan],
            "longitude": [np.nan, 2.25, np.nan, np.nan],
            "is_fraud": [1, 0, 0, 1],
        }
    )


def test_labels_enter_after_the_delay_and_before_transactions_of_the_same_instant() -> None:
    stream = EventStream(_frame(), pd.Timedelta(days=1), TopicSettings(partitions=3))
    kinds = stream.kinds.tolist()
    rows = stream.rows.tolist()
    # t0 at day 0; its label at day 1 ties with t2 (day 1): the label goes first; t"3 label at day 3 is last
    assert list(zip(kinds, rows, strict=True)) == [
        (TRANSACTION, 0),
        (TRANSACTION, 1),
        (LABEL, 0),
        (TRANSACTION, 2),
        (TRANSACTION, 3),
        (LABEL, 3),
    ]
    assert np.all(np.diff(stream.times) >= 0)
    assert stream.n_labels == 2


def test_records_decode_with_the_core_validators_and_keep_partition_order() -> None:
    topics = TopicSettings(partitions=3)
    stream = EventStream(_frame(), pd.Timedelta(days=1), topics)
    records = stream.records(0, len(stream))
    txns = [decode_transaction(r.value, NOW, 300.0) for r in records if r.topic == topics.transactions]
    labels = [decode_label(r.value) for r in records if r.topic == topics.labels]
    assert [t.transaction_id for t in txns] == ["t0", "t1", "t2", 't"3']  # type: ignore[union-attr]
    assert txns[1].latitude == 48.5 and txns[1].channel == "online"  # type: ignore[union-attr]
    assert txns[2].amount == 99999.99  # type: ignore[union-attr]
    first = labels[0]
    assert first.is_fraud and first.merchant_id == "m0"  # type: ignore[union-attr]
    assert first.labelled_at == datetime(2024, 1, 2, tzinfo=UTC)  # type: ignore[union-attr]
    assert first.transaction_timestamp == datetime(2024, 1, 1, tzinfo=UTC)  # type: ignore[union-attr]
    # one user -> one partition on both topics; offsets count up per topic partition from 0
    by_user: dict[bytes | None, set[int]] = {}
    seen: dict[tuple[str, int], list[int]] = {}
    for r in records:
        by_user.setdefault(r.key, set()).add(r.partition)
        seen.setdefault((r.topic, r.partition), []).append(r.offset)
    assert all(len(p) == 1 for p in by_user.values())
    assert all(offsets == list(range(len(offsets))) for offsets in seen.values())


def test_index_at_counts_labels_at_the_cut_in_the_later_segment() -> None:
    stream = EventStream(_frame(), pd.Timedelta(days=1), TopicSettings(partitions=1))
    cut = stream.index_at(pd.Timestamp("2024-01-02", tz="UTC"))
    assert stream.kinds[cut] == LABEL and stream.rows[cut] == 0
