"""A deterministic synthetic transaction stream for the feature and store tests (no shared data needed)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from fraudstream.contracts import Label, LabelSource, Transaction

START = datetime(2024, 3, 1, tzinfo=UTC)
CHANNELS = ["card_present", "online", "atm", "transfer", "contactless", "other", None]


def synthetic_stream(n: int, users: int = 500, merchants: int = 200, days: float = 30.0, seed: int = 7) -> pd.DataFrame:
    """Sorted by event time; every optional field sometimes present, sometimes missing; ~2% fraud."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, int(days * 86_400), n))
    located = rng.random(n) < 0.7
    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx{i}" for i in range(n)],
            "user_id": [f"user{u}" for u in rng.integers(0, users, n)],
            "timestamp": pd.Timestamp(START) + pd.to_timedelta(offsets, unit="s"),
            "amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
            "merchant_id": [f"m{m}" for m in rng.zipf(1.5, n) % merchants],
            "merchant_category": [None if c < 0 else f"cat{c}" for c in rng.integers(-2, 12, n)],
            "channel": [CHANNELS[c] for c in rng.integers(0, len(CHANNELS), n)],
            "latitude": np.where(located, rng.uniform(49.5, 51.5, n), np.nan),
            "longitude": np.where(located, rng.uniform(2.5, 6.4, n), np.nan),
            "country": [None if c == 0 else "BE" for c in rng.integers(0, 4, n)],
            "device_id": [None if d < 0 else f"dev{d}" for d in rng.integers(-3, 40, n)],
            "is_fraud": (rng.random(n) < 0.02).astype(int),
        }
    )
    return frame


def fraud_labels(frame: pd.DataFrame, delay_s: float, seed: int = 11) -> pd.DataFrame:
    """One label per fraud, known between the delay and the delay + 3 days after the transaction."""
    rng = np.random.default_rng(seed)
    frauds = frame[frame["is_fraud"] == 1]
    extra = rng.integers(0, 3 * 86_400, len(frauds))
    return pd.DataFrame(
        {
            "transaction_id": frauds["transaction_id"].to_numpy(),
            "user_id": frauds["user_id"].to_numpy(),
            "merchant_id": frauds["merchant_id"].to_numpy(),
            "transaction_timestamp": frauds["timestamp"].to_numpy(),
            "labelled_at": frauds["timestamp"] + pd.to_timedelta(delay_s + extra, unit="s"),
            "is_fraud": True,
        }
    ).sort_values("labelled_at", kind="stable", ignore_index=True)


def partition_of(user_id: str, partitions: int = 6) -> int:
    return zlib.crc32(user_id.encode()) % partitions


def labels_from_frame(labels: pd.DataFrame) -> list[Label]:
    return [
        Label(
            transaction_id=row.transaction_id,
            user_id=row.user_id,
            is_fraud=bool(row.is_fraud),
            source=LabelSource.analyst,
            labelled_at=row.labelled_at.to_pydatetime(),
            merchant_id=row.merchant_id,
            transaction_timestamp=row.transaction_timestamp.to_pydatetime(),
        )
        for row in labels.itertuples()
    ]


def txn(
    user: str = "u1", when: datetime = START, amount: float = 10.0, merchant: str = "m1", **extra: object
) -> Transaction:
    tid = extra.pop("transaction_id", f"{user}-{when.isoformat()}-{merchant}-{amount}")
    return Transaction.model_validate(
        {"transaction_id": tid, "user_id": user, "timestamp": when, "amount": amount, "merchant_id": merchant, **extra}
    )
