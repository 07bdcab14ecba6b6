"""A transaction reduced to the primitives the feature kernels use (seconds, cents, hashes, micro-degrees)."""

from __future__ import annotations

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

    def take(self, rows: npt.NDArray[np.intp]) -> TxnColumns:
        """The columns of these rows, in that order."""
        return TxnColumns(*(getattr(self, name)[rows] for name in TxnColumns.__dataclass_fields__))


def columns_of(txns: Sequence[Transaction]) -> TxnColumns:
    """TxnColumns of validated transactions; equal, row for row, to `fields_of` of each."""
    raw = [
        (t.timestamp.timestamp(), t.amount, t.latitude, t.longitude, t.merchant_id, t.merchant_category, t.device_id,
         None if t.channel is None else t.channel.value, t.country)
        for t in txns
    ]  # fmt: skip
    return columns_from(*(zip(*raw, strict=True) if raw else [()] * 9))


def columns_from(
    stamps: Sequence[float],
    amount: Sequence[float],
    lat: Sequence[float | None],
    lon: Sequence[float | None],
    merchant: Sequence[str],
    category: Sequence[str | None],
    device: Sequence[str | None],
    channel: Sequence[str | None],
    country: Sequence[str | None],
) -> TxnColumns:
    """TxnColumns from the raw values of a batch, one sequence per field (None where absent): epoch seconds as
    floats, amounts, coordinates, ids, channel names. Hashing runs per distinct value, conversions per column."""
    n = len(stamps)
    hashes: dict[str | None, int] = {None: MISSING}
    for value in {*merchant, *category, *device}:
        if value is not None:
            hashes[value] = id_hash(value)
    lat_a = np.array(lat, dtype=np.float64)  # None -> nan
    lon_a = np.array(lon, dtype=np.float64)
    located = ~(np.isnan(lat_a) | np.isnan(lon_a))
    codes = {None: MISSING} | {c: CHANNEL_CODES[c] for c in set(channel) if c is not None}
    amount_a = np.array(amount, dtype=np.float64)
    return TxnColumns(
        # floor of the float epoch: exact for whole microseconds before 2100 (a second's last microsecond is
        # 1e-6 below the next second, more than the float's half ulp there)
        ts=np.floor(np.array(stamps, dtype=np.float64)).astype(np.int64),
        cents=np.rint(amount_a * 100.0).astype(np.int64),
        amount=amount_a,
        merchant_h=np.fromiter(map(hashes.__getitem__, merchant), np.int64, n),
        category_h=np.fromiter(map(hashes.__getitem__, category), np.int64, n),
        device_h=np.fromiter(map(hashes.__getitem__, device), np.int64, n),
        lat_e6=np.where(located, np.rint(np.nan_to_num(lat_a) * 1e6), 0).astype(np.int64),
        lon_e6=np.where(located, np.rint(np.nan_to_num(lon_a) * 1e6), 0).astype(np.int64),
        located=located,
        channel=np.fromiter(map(codes.__getitem__, channel), np.int64, n),
        country_missing=np.fromiter((c is None for c in country), np.bool_, n),
    )
