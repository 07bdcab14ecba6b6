"""A transaction reduced to the primitives the feature kernels use (seconds, cents, hashes, micro-degrees)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from features.spec import CHANNELS
from fraudstream.contracts import Transaction

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
CHANNEL_CODES: dict[str, int] = {name: i for i, name in enumerate(CHANNELS)}
MISSING = -1


def event_second(when: datetime) -> int:
    """Whole UTC seconds since the epoch, floored (event times have second resolution)."""
    return (when - _EPOCH) // _SECOND


def id_hash(value: str) -> int:
    """A stable 32-bit hash of an id (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(value.encode("utf-8"))


def to_cents(amount: float) -> int:
    return round(amount * 100.0)


def to_e6(degrees: float) -> int:
    return round(degrees * 1e6)


class TxnFields(NamedTuple):
    ts: int
    cents: int
    amount: float
    merchant_h: int
    category_h: int  # MISSING when absent
    device_h: int  # MISSING when absent
    lat_e6: int | None
    lon_e6: int | None
    channel: int  # index into CHANNELS, MISSING when absent
    country_missing: bool


def fields_of(txn: Transaction) -> TxnFields:
    located = txn.latitude is not None and txn.longitude is not None
    return TxnFields(
        ts=event_second(txn.timestamp),
        cents=to_cents(txn.amount),
        amount=float(txn.amount),
        merchant_h=id_hash(txn.merchant_id),
        category_h=MISSING if txn.merchant_category is None else id_hash(txn.merchant_category),
        device_h=MISSING if txn.device_id is None else id_hash(txn.device_id),
        lat_e6=to_e6(txn.latitude) if located and txn.latitude is not None else None,
        lon_e6=to_e6(txn.longitude) if located and txn.longitude is not None else None,
        channel=MISSING if txn.channel is None else CHANNEL_CODES[txn.channel.value],
        country_missing=txn.country is None,
    )


@dataclass(frozen=True)
class TxnColumns:
    """A batch of transactions reduced to columns (the same primitives as TxnFields), built in one pass."""

    ts: npt.NDArray[np.int64]
    cents: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    merchant_h: npt.NDArray[np.int64]
    category_h: npt.NDArray[np.int64]
    device_h: npt.NDArray[np.int64]
    lat_e6: npt.NDArray[np.int64]  # 0 where not located
    lon_e6: npt.NDArray[np.int64]
    located: npt.NDArray[np.bool_]
    channel: npt.NDArray[np.int64]
    country_missing: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ts)


def columns_of(txns: Sequence[Transaction]) -> TxnColumns:
    """TxnColumns of validated transactions; equal, row for row, to `fields_of` of each."""
    n = len(txns)
    hashes: dict[str | None, int] = {None: MISSING}

    def h(value: str | None) -> int:
        found = hashes.get(value)
        if found is None:
            found = hashes[value] = id_hash(value)  # type: ignore[arg-type]
        return found

    stamps = np.fromiter((t.timestamp.timestamp() for t in txns), np.float64, n)
    amount = np.fromiter((t.amount for t in txns), np.float64, n)
    lat = np.fromiter((math.nan if t.latitude is None or t.longitude is None else t.latitude for t in txns),
                      np.float64, n)  # fmt: skip
    lon = np.fromiter((math.nan if t.latitude is None or t.longitude is None else t.longitude for t in txns),
                      np.float64, n)  # fmt: skip
    located = ~np.isnan(lat)
    codes = CHANNEL_CODES
    return TxnColumns(
        # floor of the float epoch: exact for whole microseconds before 2100 (a second's last microsecond is
        # 1e-6 below the next second, more than the float's half ulp there)
        ts=np.floor(stamps).astype(np.int64),
        cents=np.rint(amount * 100.0).astype(np.int64),
        amount=amount,
        merchant_h=np.fromiter((h(t.merchant_id) for t in txns), np.int64, n),
        category_h=np.fromiter((h(t.merchant_category) for t in txns), np.int64, n),
        device_h=np.fromiter((h(t.device_id) for t in txns), np.int64, n),
        lat_e6=np.where(located, np.rint(np.nan_to_num(lat) * 1e6), 0).astype(np.int64),
        lon_e6=np.where(located, np.rint(np.nan_to_num(lon) * 1e6), 0).astype(np.int64),
        located=located,
        channel=np.fromiter((MISSING if t.channel is None else codes[t.channel.value] for t in txns), np.int64, n),
        country_missing=np.fromiter((t.country is None for t in txns), np.bool_, n),
    )

