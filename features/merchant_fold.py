"""The compiled per-batch merchant fold: delayed-window counts and risk for every event, then the record updates.

Same definitions as `features.merchant` (the reference): a merchant's view merges every partition's transaction
seconds and every labels partition's frauds; an event at t reads (t - delay - w, t - delay] and the frauds of
that window known at t. A folded transaction goes into its own partition's record (pruned to the retention) and,
when it is at or before `view_horizon`, into the view that later events of the batch read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.config import FeatureConfig
from features.jit import kernel
from features.merchant import merchant_retention_s
from features.spec import MERCHANT_NAMES, MERCHANT_WINDOWS
from features.state import MERCHANT_FRAUD_FORMAT, MERCHANT_TX_FORMAT
from features.user_codec import put_fixed_at, put_uvarint_at, read_fixed, read_uvarint
from features.user_fold import bisect_right_in
from fraudstream.errors import StateStoreError

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]

_WIDTHS = np.asarray([w for _, w in MERCHANT_WINDOWS], dtype=np.int64)


@kernel
def _tx_count(buf: U8, start: int, end: int) -> int:
    """Entries of a transaction record; -1 when corrupt."""
    if start == end:
        return 0
    if buf[start] != MERCHANT_TX_FORMAT:
        return -1
    n, pos = read_uvarint(buf, start + 1, end)
    if pos < 0 or pos + 4 * n != end:
        return -1
    return n


@kernel
def _read_tx(buf: U8, start: int, end: int, out: I64, at: int) -> int:
    """Append a record's seconds to out[at:]; returns the new length."""
    if start == end:
        return at
    n, pos = read_uvarint(buf, start + 1, end)
    for k in range(n):
        out[at + k] = read_fixed(buf, pos + 4 * k, 4)
    return at + n


@kernel
def _read_frauds(buf: U8, start: int, end: int, ts: I64, known: I64, at: int) -> int:
    """Append a fraud record's (transaction second, labelled second); -1 when corrupt."""
    if start == end:
        return at
    if buf[start] != MERCHANT_FRAUD_FORMAT:
        return -1
    n, pos = read_uvarint(buf, start + 1, end)
    if pos < 0:
        return -1
    for _ in range(n):
        if pos + 4 > end:
            return -1
        t = read_fixed(buf, pos, 4)
        delta, pos = read_uvarint(buf, pos + 4, end)
        if pos < 0 or pos + 4 > end or at >= len(ts):
            return -1
        ts[at], known[at] = t, t + delta
        at += 1
        pos += 4
    return at if pos == end else -1


@kernel
def _insert_sorted(seq: I64, n: int, value: int) -> int:
    """Insert after equal values; returns the new length (capacity is the caller's)."""
    i = n if n == 0 or value >= seq[n - 1] else bisect_right_in(seq, value, 0, n)
    for k in range(n, i, -1):
        seq[k] = seq[k - 1]
    seq[i] = value
    return n + 1


@kernel
def _fold(
    tx_buf: U8, tx_off: I64, fr_buf: U8, fr_off: I64, parts: int, label_parts: int, group_order: I64,
    group_start: I64, ev_part: I64, ev_ts: I64, ev_late: B, delay: int, retention: int, view_horizon: int,
    widths: I64, feats: F64, out_buf: U8, out_off: I64, changed: B, status: I64,
) -> None:  # fmt: skip
    pos = 0
    for g in range(len(group_start) - 1):
        a, b = group_start[g], group_start[g + 1]
        m = b - a
        counts = np.zeros(parts, dtype=np.int64)
        total = m
        for p in range(parts):
            r = g * parts + p
            c = _tx_count(tx_buf, tx_off[r], tx_off[r + 1])
            if c < 0:
                status[0], status[1] = 1, g
                return
            counts[p] = c
            total += c
        # each partition's record, with room for this batch's events
        records = np.empty((parts, counts.max() + m), dtype=np.int64)
        lengths = np.zeros(parts, dtype=np.int64)
        view = np.empty(total, dtype=np.int64)
        nv = 0
        for p in range(parts):
            r = g * parts + p
            lengths[p] = _read_tx(tx_buf, tx_off[r], tx_off[r + 1], records[p], 0)
            view[nv : nv + lengths[p]] = records[p, : lengths[p]]
            nv += lengths[p]
        view[:nv] = np.sort(view[:nv])
        fr_bytes = fr_off[(g + 1) * label_parts] - fr_off[g * label_parts]
        fraud_ts = np.empty(fr_bytes // 5 + 1, dtype=np.int64)
        fraud_known = np.empty(fr_bytes // 5 + 1, dtype=np.int64)
        nf = 0
        for q in range(label_parts):
            r = g * label_parts + q
            nf = _read_frauds(fr_buf, fr_off[r], fr_off[r + 1], fraud_ts, fraud_known, nf)
            if nf < 0:
                status[0], status[1] = 2, g
                return
        order = np.argsort(fraud_ts[:nf], kind="mergesort")  # within equal seconds any order counts alike
        fraud_ts, fraud_known = fraud_ts[:nf][order], fraud_known[:nf][order]
        touched = np.zeros(parts, dtype=np.bool_)
        for k in range(a, b):
            i = group_order[k]
            ts = ev_ts[i]
            end = ts - delay
            hi = bisect_right_in(view, end, 0, nv)
            fhi = bisect_right_in(fraud_ts, end, 0, nf)
            for w in range(len(widths)):
                count = hi - bisect_right_in(view, end - widths[w], 0, hi)
                flo = bisect_right_in(fraud_ts, end - widths[w], 0, fhi)
                frauds = 0
                for f in range(flo, fhi):
                    if fraud_known[f] <= ts:
                        frauds += 1
                feats[i, 2 * w] = count
                feats[i, 2 * w + 1] = min(frauds, count) / count if count else 0.0
            if ev_late[i]:
                continue
            p = ev_part[i]
            n = _insert_sorted(records[p], lengths[p], ts)
            lo = bisect_right_in(records[p], records[p, n - 1] - retention, 0, n)
            if lo:
                records[p, : n - lo] = records[p, lo:n].copy()
            lengths[p] = n - lo
            touched[p] = True
            if ts <= view_horizon:
                nv = _insert_sorted(view, nv, ts)
        for p in range(parts):
            r = g * parts + p
            out_off[r] = pos
            if touched[p]:
                changed[r] = True
                out_buf[pos] = MERCHANT_TX_FORMAT
                pos = put_uvarint_at(out_buf, pos + 1, lengths[p])
                for k in range(lengths[p]):
                    pos = put_fixed_at(out_buf, pos, records[p, k], 4)
    out_off[len(out_off) - 1] = pos


@dataclass(frozen=True)
class MerchantFold:
    features: F64  # (events, MERCHANT_NAMES)
    records: dict[tuple[int, int], bytes]  # (merchant, partition) -> the record after the batch, where it changed


def fold_merchant_batch(
    tx_records: list[list[bytes]],
    fraud_records: list[list[bytes]],
    merchant: I64,
    partition: I64,
    ts: I64,
    late: B,
    cfg: FeatureConfig,
) -> MerchantFold:
    """MERCHANT_NAMES columns of a batch's events (batch order) and the changed per-partition records.

    `tx_records[j][p]`: merchant j's transaction record bytes on partition p (b'' if none);
    `fraud_records[j][q]`: its fraud record bytes on labels partition q. Late events are read, not folded.
    """
    parts = len(tx_records[0]) if tx_records else 0
    label_parts = len(fraud_records[0]) if fraud_records else 0
    tx_flat = [r for rec in tx_records for r in rec]
    fr_flat = [r for rec in fraud_records for r in rec]
    return fold_merchant_flat(tx_flat, fr_flat, parts, label_parts, merchant, partition, ts, late, cfg)


def fold_merchant_flat(
    tx_flat: list[bytes],
    fr_flat: list[bytes],
    parts: int,
    label_parts: int,
    merchant: I64,
    partition: I64,
    ts: I64,
    late: B,
    cfg: FeatureConfig,
) -> MerchantFold:
    """fold_merchant_batch with the records laid out flat: `tx_flat[j * parts + p]`, `fr_flat[j * label_parts + q]`
    (what the store gathers in one pass, with no list per merchant)."""
    n, n_merchants = len(ts), (len(tx_flat) // parts if parts else 0)
    tx_off, tx_buf = _packed(tx_flat)
    fr_off, fr_buf = _packed(fr_flat)
    group_order = np.argsort(merchant, kind="stable").astype(np.int64)
    group_start = np.zeros(n_merchants + 1, dtype=np.int64)
    np.cumsum(np.bincount(merchant, minlength=n_merchants), out=group_start[1:])
    bound = len(tx_buf) + 4 * n + 11 * len(tx_flat)
    out_buf = np.zeros(bound, dtype=np.uint8)
    out_off = np.zeros(len(tx_flat) + 1, dtype=np.int64)
    changed = np.zeros(len(tx_flat), dtype=bool)
    feats = np.zeros((n, len(MERCHANT_NAMES)), dtype=np.float64)
    status = np.zeros(2, dtype=np.int64)
    view_horizon = int(ts.max(initial=0)) - cfg.delay_s
    _fold(tx_buf, tx_off, fr_buf, fr_off, parts, label_parts, group_order, group_start, partition, ts, late,
          cfg.delay_s, merchant_retention_s(cfg), view_horizon, _WIDTHS, feats, out_buf, out_off, changed,
          status)  # fmt: skip
    if status[0]:
        what = "transaction" if status[0] == 1 else "fraud"
        raise StateStoreError(f"a merchant {what} record is corrupt; delete the key or rebuild the state by replay")
    data = out_buf.tobytes()
    offsets = out_off.tolist()
    records = {
        (r // parts, r % parts): data[offsets[r] : offsets[r + 1]] for r in np.flatnonzero(changed).tolist()
    }  # fmt: skip
    return MerchantFold(feats, records)


def _packed(values: list[bytes]) -> tuple[I64, U8]:
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), np.int64, len(values)), out=offsets[1:])
    return offsets, np.frombuffer(b"".join(values), dtype=np.uint8) if values else np.zeros(0, dtype=np.uint8)
