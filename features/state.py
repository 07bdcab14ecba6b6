"""State records folded by the feature functions, each with a compact, lossless binary encoding.

Times are whole UTC seconds, amounts whole cents, coordinates micro-degrees, ids 32-bit CRC hashes:
the in-memory record is exactly what the bytes hold, so online (decoded) and offline folds agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, chain
from operator import sub

from features.codec import Reader, put_i32, put_packed, put_u32, put_uvarint, read_packed
from fraudstream.errors import StateStoreError

USER_FORMAT = 1
MERCHANT_TX_FORMAT = 1
MERCHANT_FRAUD_FORMAT = 1
MERCHANT_VIEW_FORMAT = 1

#: Bounded sets of recent ids per user (most recently used first).
MAX_MERCHANTS = 24
MAX_CATEGORIES = 8
MAX_DEVICES = 8


def _check_format(reader: Reader, expected: int, what: str) -> None:
    found = reader.u8()
    if found != expected:
        raise StateStoreError(
            f"{what} record has format {found}, this build reads {expected}; "
            "use a fresh Redis namespace or rebuild the state by replay"
        )


def _put_ids(out: bytearray, ids: tuple[int, ...]) -> None:
    out.append(len(ids))
    put_packed(out, "I", ids)


def _get_ids(reader: Reader) -> tuple[int, ...]:
    return read_packed(reader, "I", reader.u8())


@dataclass(frozen=True, slots=True)
class UserState:
    """One user's state. `last_ts` is the user's watermark (largest event second folded); 0: no history."""

    last_ts: int = 0
    last_cents: int = 0
    n_total: int = 0
    prev_coord: tuple[int, int, int] | None = None  # lat_e6, lon_e6, ts of the latest located event
    home: tuple[int, int, int] | None = None  # lat_e6, lon_e6, n (running mean, n capped)
    log_ts: tuple[int, ...] = ()  # ascending event seconds within the widest window + grace
    log_cents: tuple[int, ...] = ()
    recent_ts: tuple[int, ...] = ()  # ascending, within 1 day + grace: for distinct merchants
    recent_merchants: tuple[int, ...] = ()
    merchants: tuple[int, ...] = ()
    categories: tuple[int, ...] = ()
    devices: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        out = bytearray((USER_FORMAT,))
        last = self.last_ts
        put_u32(out, last)
        put_uvarint(out, self.last_cents)
        put_uvarint(out, self.n_total)
        out.append((self.prev_coord is not None) | ((self.home is not None) << 1))
        if self.prev_coord is not None:
            lat, lon, ts = self.prev_coord
            put_i32(out, lat)
            put_i32(out, lon)
            put_uvarint(out, last - ts)
        if self.home is not None:
            lat, lon, n = self.home
            put_i32(out, lat)
            put_i32(out, lon)
            out.append(n)
        put_uvarint(out, len(self.log_ts))
        if self.log_ts:
            _put_log(out, last, self.log_ts, self.log_cents)
        put_uvarint(out, len(self.recent_ts))
        for ts, h in zip(self.recent_ts, self.recent_merchants, strict=True):
            put_uvarint(out, last - ts)
            put_u32(out, h)
        _put_ids(out, self.merchants)
        _put_ids(out, self.categories)
        _put_ids(out, self.devices)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> UserState:
        r = Reader(data)
        _check_format(r, USER_FORMAT, "user")
        last = r.u32()
        last_cents = r.uvarint()
        n_total = r.uvarint()
        flags = r.u8()
        prev_coord = home = None
        if flags & 1:
            prev_coord = (r.i32(), r.i32(), last - r.uvarint())
        if flags & 2:
            home = (r.i32(), r.i32(), r.u8())
        n_log = r.uvarint()
        log_ts: tuple[int, ...] = ()
        log_cents: tuple[int, ...] = ()
        if n_log:
            log_ts, log_cents = _get_log(r, last, n_log)
        recent_ts: list[int] = []
        recent_m: list[int] = []
        for _ in range(r.uvarint()):
            recent_ts.append(last - r.uvarint())
            recent_m.append(r.u32())
        merchants, categories, devices = _get_ids(r), _get_ids(r), _get_ids(r)
        r.done()
        return cls(
            last,
            last_cents,
            n_total,
            prev_coord,
            home,
            tuple(log_ts),
            tuple(log_cents),
            tuple(recent_ts),
            tuple(recent_m),
            merchants,
            categories,
            devices,
        )


def _put_log(out: bytearray, last: int, log_ts: tuple[int, ...], log_cents: tuple[int, ...]) -> None:
    """Seconds as 24-bit gaps (newest-to-oldest span first), cents as 16, 24 or 32 bits, packed by struct."""
    gaps = [last - log_ts[0], *map(sub, log_ts[1:], log_ts[:-1])]
    if max(gaps) >= 1 << 24:
        raise ValueError("user log spans more than 194 days; it is pruned to the widest window")
    top = max(log_cents)
    width = 0 if top < 1 << 16 else 1 if top < 1 << 24 else 2
    out.append(width)
    put_packed(out, "H", [g & 0xFFFF for g in gaps])
    put_packed(out, "B", [g >> 16 for g in gaps])
    if width == 2:
        put_packed(out, "I", log_cents)
        return
    put_packed(out, "H", [c & 0xFFFF for c in log_cents])
    if width == 1:
        put_packed(out, "B", [c >> 16 for c in log_cents])


def _get_log(r: Reader, last: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = r.u8()
    low, high = read_packed(r, "H", n), read_packed(r, "B", n)
    gaps = [lo | hi << 16 for lo, hi in zip(low, high, strict=True)]
    gaps[0] = last - gaps[0]
    log_ts = tuple(accumulate(gaps))
    if width == 2:
        return log_ts, read_packed(r, "I", n)
    cents = read_packed(r, "H", n)
    if width == 1:
        cents = tuple(lo | hi << 16 for lo, hi in zip(cents, read_packed(r, "B", n), strict=True))
    return log_ts, cents


def _put_sorted_seconds(out: bytearray, values: tuple[int, ...]) -> None:
    put_uvarint(out, len(values))
    put_packed(out, "I", values)


def _get_sorted_seconds(r: Reader) -> tuple[int, ...]:
    return read_packed(r, "I", r.uvarint())


@dataclass(frozen=True, slots=True)
class MerchantTxRecord:
    """One partition's share of a merchant: its transaction seconds (ascending) within retention."""

    tx_ts: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        out = bytearray((MERCHANT_TX_FORMAT,))
        _put_sorted_seconds(out, self.tx_ts)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerchantTxRecord:
        r = Reader(data)
        _check_format(r, MERCHANT_TX_FORMAT, "merchant transaction")
        values = _get_sorted_seconds(r)
        r.done()
        return cls(values)


@dataclass(frozen=True, slots=True)
class FraudEntry:
    txn_ts: int
    labelled_at: int  # never before txn_ts
    txn_hash: int  # crc32 of transaction_id: one entry per transaction


@dataclass(frozen=True, slots=True)
class MerchantFraudRecord:
    """One labels partition's share of a merchant: fraud labels, ascending by transaction time."""

    entries: tuple[FraudEntry, ...] = ()

    def to_bytes(self) -> bytes:
        out = bytearray((MERCHANT_FRAUD_FORMAT,))
        put_uvarint(out, len(self.entries))
        for e in self.entries:
            put_u32(out, e.txn_ts)
            put_uvarint(out, e.labelled_at - e.txn_ts)
            put_u32(out, e.txn_hash)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerchantFraudRecord:
        r = Reader(data)
        _check_format(r, MERCHANT_FRAUD_FORMAT, "merchant fraud")
        entries = []
        for _ in range(r.uvarint()):
            ts = r.u32()
            entries.append(FraudEntry(ts, ts + r.uvarint(), r.u32()))
        r.done()
        return cls(tuple(entries))


@dataclass(frozen=True, slots=True)
class MerchantView:
    """A merchant as seen by one event: every partition's transactions and every known fraud, merged."""

    tx_ts: tuple[int, ...] = ()  # ascending
    fraud_ts: tuple[int, ...] = ()  # ascending transaction seconds of known frauds
    fraud_labelled_at: tuple[int, ...] = ()

    @classmethod
    def merge(cls, txs: list[MerchantTxRecord], frauds: list[MerchantFraudRecord]) -> MerchantView:
        parts = [rec.tx_ts for rec in txs if rec.tx_ts]
        tx_ts = parts[0] if len(parts) == 1 else tuple(sorted(chain.from_iterable(parts)))
        entries = sorted((e.txn_ts, e.labelled_at) for rec in frauds for e in rec.entries)
        return cls(tx_ts, tuple(e[0] for e in entries), tuple(e[1] for e in entries))

    def to_bytes(self) -> bytes:
        out = bytearray((MERCHANT_VIEW_FORMAT,))
        _put_sorted_seconds(out, self.tx_ts)
        _put_sorted_seconds(out, self.fraud_ts)
        for ts, at in zip(self.fraud_ts, self.fraud_labelled_at, strict=True):
            put_uvarint(out, at - ts)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerchantView:
        r = Reader(data)
        _check_format(r, MERCHANT_VIEW_FORMAT, "merchant view")
        tx_ts = _get_sorted_seconds(r)
        fraud_ts = _get_sorted_seconds(r)
        labelled = tuple(ts + r.uvarint() for ts in fraud_ts)
        r.done()
        return cls(tx_ts, fraud_ts, labelled)
