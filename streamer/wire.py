"""Transactions decoded per batch into columns: msgspec over the batch where that is exact, pydantic otherwise.

The pydantic contract (`fraudstream.contracts.Transaction`) stays the authority. The fast path takes a batch only
when everything msgspec checks plus the batch-level scans below prove the same verdict, value for value:

- the joined bytes are ASCII with no backslash and no DEL, and no quote touches a space (`" ` or ` "`): so every
  string is printable ASCII with nothing to strip, which is exactly what the identifier pattern allows
  (every character 0x21-0x7E is a letter, number, punctuation or symbol; inner spaces are fine);
- every `"timestamp":"..."` matches the strict RFC 3339 pattern (uppercase T and Z, at most 6 fraction digits):
  msgspec alone accepts lowercase and rounds nanoseconds;
- the raw key count equals the fields msgspec found (optional fields default to UNSET): no key is repeated
  (msgspec, like most parsers, keeps the last one).

Anything else (a failure in the batch, pretty-printed or non-ASCII JSON, an escape, a range check per row) goes to
the pydantic path for the records concerned, so reasons and verdicts are the contract's own. The equivalence is
tested on the bad-input corpus and on generated valid and invalid records (tests/unit/test_streamer_wire.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import numpy as np

from features.fields import TxnColumns, columns_from, columns_of
from fraudstream.contracts import (
    MAX_AMOUNT,
    MAX_EVENT_TIME,
    MIN_EVENT_TIME,
    TIMESTAMP_PATTERN,
    Channel,
    Transaction,
)

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class WireTransaction(msgspec.Struct, forbid_unknown_fields=True):
    """The Transaction contract as msgspec checks it (types, lengths, ranges, enums); optional fields absent from
    the record stay UNSET, so present keys can be counted."""

    transaction_id: _Id
    user_id: _Id
    timestamp: datetime
    amount: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
    merchant_id: _Id
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | Unset = _UNSET
    merchant_category: _Short | Unset | None = _UNSET
    channel: Channel | Unset | None = _UNSET
    latitude: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)] | Unset | None = _UNSET
    longitude: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)] | Unset | None = _UNSET
    country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")] | Unset | None = _UNSET
    device_id: _Id | Unset | None = _UNSET


_REQUIRED_FIELDS = 5
_OPTIONAL_FIELDS = ("currency", "merchant_category", "channel", "latitude", "longitude", "country", "device_id")
_DECODER = msgspec.json.Decoder(list[WireTransaction], strict=True)
_STRICT_TIMESTAMP = re.compile(rb'"timestamp":"' + TIMESTAMP_PATTERN[1:-1].encode() + rb'"')
_MIN_S = MIN_EVENT_TIME.timestamp()
_MAX_S = MAX_EVENT_TIME.timestamp()


@dataclass(frozen=True)
class TxnRows:
    """Validated transactions of one batch as columns; `index[j]` is row j's position in the decoded values."""

    index: list[int]
    transaction_id: list[str]
    user_id: list[str]
    merchant_id: list[str]
    timestamp: list[datetime]  # UTC
    columns: TxnColumns

    def __len__(self) -> int:
        return len(self.index)

    @classmethod
    def of(cls, index: list[int], txns: Sequence[Transaction]) -> TxnRows:
        """The rows of transactions pydantic validated."""
        return cls(
            index,
            [t.transaction_id for t in txns],
            [t.user_id for t in txns],
            [t.merchant_id for t in txns],
            [t.timestamp for t in txns],
            columns_of(txns),
        )

    def take(self, keep: Sequence[int]) -> TxnRows:
        """The rows at these positions (j, not index values), in that order."""
        return TxnRows(
            [self.index[j] for j in keep],
            [self.transaction_id[j] for j in keep],
            [self.user_id[j] for j in keep],
            [self.merchant_id[j] for j in keep],
            [self.timestamp[j] for j in keep],
            self.columns.take(np.asarray(keep, dtype=np.intp)),
        )

    @staticmethod
    def concat(parts: Sequence[TxnRows]) -> TxnRows:
        """Rows of several parts, sorted by index."""
        index = [i for p in parts for i in p.index]
        fields = TxnColumns.__dataclass_fields__
        columns = TxnColumns(*(np.concatenate([getattr(p.columns, name) for p in parts]) for name in fields))
        whole = TxnRows(
            index,
            [v for p in parts for v in p.transaction_id],
            [v for p in parts for v in p.user_id],
            [v for p in parts for v in p.merchant_id],
            [v for p in parts for v in p.timestamp],
            columns,
        )
        return whole.take(sorted(range(len(index)), key=index.__getitem__))


def _present(column: list[Any]) -> int:
    return len(column) - column.count(_UNSET)


def _none_for_unset(column: list[Any]) -> list[Any]:
    return [None if v is _UNSET else v for v in column] if _UNSET in column else column


def fast_rows(values: list[bytes], now: datetime | None, max_future_skew_s: float) -> tuple[TxnRows, list[int]] | None:
    """(the rows the fast path proves valid, positions it leaves to pydantic), or None when the batch as a whole is
    outside the fast path (then pydantic decodes all of it). Values are JSON objects, each starting with `{`."""
    joined = b"[" + b",\n".join(values) + b"]"
    if not joined.isascii() or b"\\" in joined or b"\x7f" in joined or b'" ' in joined or b' "' in joined:
        return None
    try:
        wire = _DECODER.decode(joined)
    except msgspec.DecodeError:  # broken JSON or a contract failure (ValidationError is a DecodeError)
        return None
    n = len(values)
    if len(wire) != n or len(_STRICT_TIMESTAMP.findall(joined)) != n:
        return None
    optional = {name: [getattr(w, name) for w in wire] for name in _OPTIONAL_FIELDS}
    keys = _REQUIRED_FIELDS * n + sum(_present(col) for col in optional.values())
    if joined.count(b'":') != keys:
        return None
    stamps = [w.timestamp for w in wire]
    utc = [d if d.tzinfo is UTC else d.astimezone(UTC) for d in stamps]
    seconds = np.array([d.timestamp() for d in stamps], dtype=np.float64)
    lat, lon = _none_for_unset(optional["latitude"]), _none_for_unset(optional["longitude"])
    ok = (seconds >= _MIN_S) & (seconds < _MAX_S)
    ok &= np.array([a is None for a in lat]) == np.array([b is None for b in lon])
    if now is not None:  # within a millisecond of the limit: pydantic decides, on exact datetimes
        ok &= seconds < now.timestamp() + max_future_skew_s - 1e-3
    channels = _none_for_unset(optional["channel"])
    merchants = [w.merchant_id for w in wire]
    rows = TxnRows(
        list(range(n)),
        [w.transaction_id for w in wire],
        [w.user_id for w in wire],
        merchants,
        utc,
        columns_from(
            seconds.tolist(), [w.amount for w in wire], lat, lon, merchants,
            _none_for_unset(optional["merchant_category"]), _none_for_unset(optional["device_id"]),
            [None if c is None else c.value for c in channels], _none_for_unset(optional["country"]),
        ),
    )  # fmt: skip
    if ok.all():
        return rows, []
    return rows.take(np.flatnonzero(ok).tolist()), np.flatnonzero(~ok).tolist()


class _Stamp(msgspec.Struct):
    """Only the event time of a transaction (every other field skipped)."""

    timestamp: datetime


_STAMPS = msgspec.json.Decoder(list[_Stamp])
_STAMP = msgspec.json.Decoder(_Stamp)


def event_seconds(values: Sequence[bytes | None]) -> np.ndarray:
    """Each value's event time in seconds since the epoch (NaN where it has none that can be read), one decode per
    batch; a batch with a broken value is read value by value. For ordering only: the contract still decides."""
    try:
        stamps: list[_Stamp | None] = list(_STAMPS.decode(b"[" + b",".join(v or b"null" for v in values) + b"]"))
    except (msgspec.DecodeError, msgspec.ValidationError):
        stamps = []
        for v in values:
            try:
                stamps.append(_STAMP.decode(v or b""))
            except (msgspec.DecodeError, msgspec.ValidationError):
                stamps.append(None)
    return np.fromiter((_seconds(s.timestamp) if s is not None else np.nan for s in stamps), np.float64, len(stamps))


def _seconds(when: datetime) -> float:
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()
