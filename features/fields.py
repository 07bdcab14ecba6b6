"""A transaction reduced to the primitives the feature kernels use (seconds, cents, hashes, micro-degrees)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

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
