"""The compiled per-batch user fold: every event of a batch, extract before update, in one call.

Same definitions as the reference kernels in `features.transform` (history, windows, location, novelty, late
check, fold), value for value: integer sums of cents, the same float divisions, round half to even. The
streamer's store, the offline builder and the backtest all fold through `fold_user_batch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from features.config import DAY_S, FeatureConfig
from features.fields import TxnColumns
from features.jit import kernel
from features.spec import USER_NAMES, USER_WINDOWS
from features.state import MAX_CATEGORIES, MAX_DEVICES, MAX_MERCHANTS
from features.transform import EARTH_RADIUS_KM, HOME_N_CAP, NO_HISTORY_INTERVAL_S, STD_FLOOR_CENTS, WIDEST_WINDOW_S
from features.user_codec import (
    ENTRY_BOUND,
    FIXED_BOUND,
    HAS_HOME,
    HAS_PREV,
    HEADER_SLOTS,
    HOME_LAT,
    HOME_LON,
    HOME_N,
    LAST_CENTS,
    LAST_TS,
    N_CATEGORIES,
    N_DEVICES,
    N_LOG,
    N_MERCHANTS,
    N_RECENT,
    N_TOTAL,
    OK,
    PREV_LAT,
    PREV_LON,
    PREV_TS,
    TOO_LONG,
    decode_user,
    encode_user,
)
from fraudstream.errors import StateStoreError

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]

N_USER_COLUMNS = len(USER_NAMES)
_WIDTHS = np.asarray([w for _, w in USER_WINDOWS], dtype=np.int64)
_MISSING = -1
_MIN_TRAVEL_H = 1.0 / 60.0
_N_TOTAL_CAP = 2**32 - 1
_DEG = math.pi / 180.0


@kernel
def bisect_right_in(a: I64, x: int, lo: int, hi: int) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@kernel
def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = lat1 * _DEG, lat2 * _DEG
    dp, dl = p2 - p1, (lon2 - lon1) * _DEG
    s1, s2 = math.sin(dp / 2), math.sin(dl / 2)
    a = s1 * s1 + math.cos(p1) * math.cos(p2) * (s2 * s2)
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@kernel
def _squares_as_float(log_cents: I64, lo: int, hi: int) -> float:
    """float(sum of squares) rounded once, as Python's exact int sum would be: a 128-bit sum, then rounded."""
    high = np.uint64(0)
    low = np.uint64(0)
    for k in range(lo, hi):
        sq = np.uint64(log_cents[k]) * np.uint64(log_cents[k])
        low += sq
        if low < sq:
            high += np.uint64(1)
    if high == 0:
        return float(low)
    shift = 0
    while (high >> np.uint64(shift)) != 0:
        shift += 1
    s = np.uint64(shift)
    top = (high << (np.uint64(64) - s)) | (low >> s)
    if low & ((np.uint64(1) << s) - np.uint64(1)):
        top |= np.uint64(1)  # sticky bit: far below the 53 kept, so rounding to nearest stays correct
    return float(top) * 2.0**shift


@kernel
def _windows(
    log_ts: I64, log_cents: I64, n_log: int, ts: int, cents: int, widths: I64, row: F64, col: int
) -> None:  # fmt: skip
    """amount_ratio_mean_*/amount_zscore_* (previous windows, 1d..30d), then count/mean/max/min_* per window."""
    hi = bisect_right_in(log_ts, ts, 0, n_log)
    ratio_col = col
    count_col = col + 2 * (len(widths) - 1)
    for w in range(len(widths)):
        lo = bisect_right_in(log_ts, ts - widths[w], 0, hi)
        n = hi - lo
        c = count_col + 4 * w
        if n:
            total = 0
            top = cents
            bottom = cents
            for k in range(lo, hi):
                v = log_cents[k]
                total += v
                top = max(top, v)
                bottom = min(bottom, v)
            row[c] = n + 1.0
            row[c + 1] = (total + cents) / (n + 1) / 100.0
            row[c + 2] = top / 100.0
            row[c + 3] = bottom / 100.0
            if w > 0:
                mean = total / n
                var = _squares_as_float(log_cents, lo, hi) / n - mean * mean
                std = math.sqrt(var) if var > 0.0 else 0.0
                row[ratio_col] = cents / max(mean, 1.0)
                row[ratio_col + 1] = (cents - mean) / max(std, STD_FLOOR_CENTS)
        else:
            row[c] = 1.0
            row[c + 1] = cents / 100.0
            row[c + 2] = cents / 100.0
            row[c + 3] = cents / 100.0
            if w > 0:
                row[ratio_col] = 1.0
                row[ratio_col + 1] = 0.0
        if w > 0:
            ratio_col += 2


@kernel
def _contains(ids: I64, n: int, h: int) -> bool:
    for k in range(n):
        if ids[k] == h:
            return True
    return False


@kernel
def _mru(ids: I64, n: int, h: int, cap: int) -> int:
    """Move or insert h at the front (most recently used first), keeping at most cap; returns the new length."""
    if n and ids[0] == h:
        return n
    at = -1
    for k in range(n):
        if ids[k] == h:
            at = k
            break
    if at < 0:
        at = min(n, cap - 1)
        n = min(n + 1, cap)
    for k in range(at, 0, -1):
        ids[k] = ids[k - 1]
    ids[0] = h
    return n


@kernel
def _insert(seq_ts: I64, seq_val: I64, n: int, ts: int, val: int, horizon: int) -> int:
    """Insert (ts, val) after equal times, then drop entries at or before horizon; returns the new length."""
    i = n if n == 0 or ts >= seq_ts[n - 1] else bisect_right_in(seq_ts, ts, 0, n)
    for k in range(n, i, -1):
        seq_ts[k] = seq_ts[k - 1]
        seq_val[k] = seq_val[k - 1]
    seq_ts[i] = ts
    seq_val[i] = val
    n += 1
    lo = bisect_right_in(seq_ts, horizon, 0, n)
    if lo:
        for k in range(n - lo):
            seq_ts[k] = seq_ts[k + lo]
            seq_val[k] = seq_val[k + lo]
    return n - lo


@kernel
def _extract(
    hdr: I64, log_ts: I64, log_cents: I64, rec_ts: I64, rec_m: I64, merchants: I64, categories: I64,
    devices: I64, ts: int, cents: int, amount: float, mh: int, ch: int, dh: int, lat: int, lon: int,
    located: bool, widths: I64, row: F64,
) -> None:  # fmt: skip
    """USER_NAMES columns of one event against the state before it."""
    if hdr[N_TOTAL] == 0:
        row[0], row[1], row[2], row[3] = NO_HISTORY_INTERVAL_S, 1.0, 0.0, 1.0
    else:
        last_amount = hdr[LAST_CENTS] / 100.0
        row[0] = float(max(ts - hdr[LAST_TS], 0))
        row[1] = 0.0
        row[2] = amount - last_amount
        row[3] = amount / max(last_amount, 0.01)
    _windows(log_ts, log_cents, hdr[N_LOG], ts, cents, widths, row, 4)
    c = 4 + 6 * len(widths) - 2
    if not located:
        row[c], row[c + 1], row[c + 2], row[c + 3] = 0.0, 0.0, 0.0, 1.0
    else:
        la, lo = lat / 1e6, lon / 1e6
        home_km = 0.0
        if hdr[HAS_HOME]:
            home_km = _haversine(la, lo, hdr[HOME_LAT] / 1e6, hdr[HOME_LON] / 1e6)
        if not hdr[HAS_PREV]:
            row[c], row[c + 1], row[c + 2], row[c + 3] = 0.0, home_km, 0.0, 1.0
        else:
            prev_km = _haversine(la, lo, hdr[PREV_LAT] / 1e6, hdr[PREV_LON] / 1e6)
            hours = max((ts - hdr[PREV_TS]) / 3600.0, _MIN_TRAVEL_H)
            row[c], row[c + 1], row[c + 2], row[c + 3] = prev_km, home_km, prev_km / hours, 0.0
    c += 4
    row[c] = 0.0 if _contains(merchants, hdr[N_MERCHANTS], mh) else 1.0
    row[c + 1] = 1.0 if ch != _MISSING and not _contains(categories, hdr[N_CATEGORIES], ch) else 0.0
    row[c + 2] = 1.0 if dh != _MISSING and not _contains(devices, hdr[N_DEVICES], dh) else 0.0
    rhi = bisect_right_in(rec_ts, ts, 0, hdr[N_RECENT])
    rlo = bisect_right_in(rec_ts, ts - DAY_S, 0, rhi)
    distinct = 1.0  # this merchant
    for k in range(rlo, rhi):
        m = rec_m[k]
        if m == mh:
            continue
        seen = False
        for q in range(rlo, k):
            if rec_m[q] == m:
                seen = True
                break
        if not seen:
            distinct += 1.0
    row[c + 3] = distinct


@kernel
def _update(
    hdr: I64, log_ts: I64, log_cents: I64, rec_ts: I64, rec_m: I64, merchants: I64, categories: I64,
    devices: I64, ts: int, cents: int, mh: int, ch: int, dh: int, lat: int, lon: int, located: bool, grace: int,
) -> None:  # fmt: skip
    newest = ts >= hdr[LAST_TS]
    last = ts if newest else hdr[LAST_TS]
    hdr[N_LOG] = _insert(log_ts, log_cents, hdr[N_LOG], ts, cents, last - grace - WIDEST_WINDOW_S)
    hdr[N_RECENT] = _insert(rec_ts, rec_m, hdr[N_RECENT], ts, mh, last - grace - DAY_S)
    if located:
        if not hdr[HAS_PREV] or ts >= hdr[PREV_TS]:
            hdr[HAS_PREV], hdr[PREV_LAT], hdr[PREV_LON], hdr[PREV_TS] = 1, lat, lon, ts
        if not hdr[HAS_HOME]:
            hdr[HAS_HOME], hdr[HOME_LAT], hdr[HOME_LON], hdr[HOME_N] = 1, lat, lon, 1
        else:
            n = min(hdr[HOME_N] + 1, HOME_N_CAP)
            hdr[HOME_LAT] += np.int64(np.rint((lat - hdr[HOME_LAT]) / n))
            hdr[HOME_LON] += np.int64(np.rint((lon - hdr[HOME_LON]) / n))
            hdr[HOME_N] = n
    hdr[LAST_TS] = last
    if newest:
        hdr[LAST_CENTS] = cents
    hdr[N_TOTAL] = min(hdr[N_TOTAL] + 1, _N_TOTAL_CAP)
    hdr[N_MERCHANTS] = _mru(merchants, hdr[N_MERCHANTS], mh, MAX_MERCHANTS)
    if ch != _MISSING:
        hdr[N_CATEGORIES] = _mru(categories, hdr[N_CATEGORIES], ch, MAX_CATEGORIES)
    if dh != _MISSING:
        hdr[N_DEVICES] = _mru(devices, hdr[N_DEVICES], dh, MAX_DEVICES)


@kernel
def _fold(
    state_buf: U8, state_off: I64, group_order: I64, group_start: I64, ev_ts: I64, ev_cents: I64,
    ev_amount: F64, ev_mh: I64, ev_ch: I64, ev_dh: I64, ev_lat: I64, ev_lon: I64, ev_located: B,
    grace: int, widths: I64, encode: bool, feats: F64, late: B, out_buf: U8, out_off: I64, status: I64,
) -> None:  # fmt: skip
    """Fold each user's events (group g: group_order[group_start[g]:group_start[g + 1]], in batch order)."""
    hdr = np.zeros(HEADER_SLOTS, dtype=np.int64)
    merchants = np.zeros(MAX_MERCHANTS, dtype=np.int64)
    categories = np.zeros(MAX_CATEGORIES, dtype=np.int64)
    devices = np.zeros(MAX_DEVICES, dtype=np.int64)
    pos = 0
    for g in range(len(group_start) - 1):
        a, b = group_start[g], group_start[g + 1]
        start, end = state_off[g], state_off[g + 1]
        cap = (end - start) + (b - a) + 1
        log_ts = np.empty(cap, dtype=np.int64)
        log_cents = np.empty(cap, dtype=np.int64)
        rec_ts = np.empty(cap, dtype=np.int64)
        rec_m = np.empty(cap, dtype=np.int64)
        code = decode_user(state_buf, start, end, hdr, log_ts, log_cents, rec_ts, rec_m, merchants, categories,
                           devices)  # fmt: skip
        if code != OK:
            status[0], status[1] = code, g
            return
        for k in range(a, b):
            i = group_order[k]
            ts = ev_ts[i]
            _extract(hdr, log_ts, log_cents, rec_ts, rec_m, merchants, categories, devices, ts, ev_cents[i],
                     ev_amount[i], ev_mh[i], ev_ch[i], ev_dh[i], ev_lat[i], ev_lon[i], ev_located[i], widths,
                     feats[i])  # fmt: skip
            if hdr[N_TOTAL] > 0 and ts < hdr[LAST_TS] - grace:
                late[i] = True
                continue
            _update(hdr, log_ts, log_cents, rec_ts, rec_m, merchants, categories, devices, ts, ev_cents[i],
                    ev_mh[i], ev_ch[i], ev_dh[i], ev_lat[i], ev_lon[i], ev_located[i], grace)  # fmt: skip
        out_off[g] = pos
        if encode:
            pos = encode_user(hdr, log_ts, log_cents, rec_ts, rec_m, merchants, categories, devices, out_buf, pos)
            if pos < 0:
                status[0], status[1] = TOO_LONG, g
                return
    out_off[len(group_start) - 1] = pos


@dataclass(frozen=True)
class UserEvents:
    """A batch's events as columns (batch order); `user` indexes the batch's users 0..n_users-1."""

    user: I64
    ts: I64
    cents: I64
    amount: F64
    merchant_h: I64
    category_h: I64  # -1: missing
    device_h: I64  # -1: missing
    lat_e6: I64  # meaningful where located
    lon_e6: I64
    located: B


@dataclass(frozen=True)
class FoldResult:
    features: F64  # (events, USER_NAMES)
    late: B
    states: list[bytes]  # per user, the state after the batch (empty list when encoding was not asked for)


def fold_user_batch(
    states: list[bytes], events: UserEvents, cfg: FeatureConfig, *, encode: bool = True
) -> FoldResult:  # fmt: skip
    """Extract and fold every event of the batch for its user; `states[u]` is user u's bytes (b'' if new).

    >>> from features.fields import id_hash
    >>> one = np.ones(1, dtype=np.int64)
    >>> ev = UserEvents(one * 0, one * 1_700_000_000, one * 1250, np.array([12.5]), one * id_hash("m1"),
    ...                 -one, -one, one * 0, one * 0, np.zeros(1, dtype=bool))
    >>> out = fold_user_batch([b""], ev, FeatureConfig())
    >>> out.features[0, :2].tolist(), bool(out.late[0]), len(out.states[0]) > 0
    ([2592000.0, 1.0], False, True)
    """
    n, n_users = len(events.ts), len(states)
    lengths = np.fromiter((len(s) for s in states), np.int64, n_users)
    state_off = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=state_off[1:])
    state_buf = np.frombuffer(b"".join(states), dtype=np.uint8) if n_users else np.zeros(0, dtype=np.uint8)
    group_order = np.argsort(events.user, kind="stable").astype(np.int64)
    per_user = np.bincount(events.user, minlength=n_users).astype(np.int64)
    group_start = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(per_user, out=group_start[1:])
    bound = int(FIXED_BOUND * n_users + 5 * state_off[-1] + ENTRY_BOUND * n) if encode else 0
    out_buf = np.zeros(bound, dtype=np.uint8)
    out_off = np.zeros(n_users + 1, dtype=np.int64)
    feats = np.empty((n, N_USER_COLUMNS), dtype=np.float64)
    late = np.zeros(n, dtype=bool)
    status = np.zeros(2, dtype=np.int64)
    _fold(state_buf, state_off, group_order, group_start, events.ts, events.cents, events.amount,
          events.merchant_h, events.category_h, events.device_h, events.lat_e6, events.lon_e6, events.located,
          cfg.grace_s, _WIDTHS, encode, feats, late, out_buf, out_off, status)  # fmt: skip
    if status[0] != OK:
        raise StateStoreError(_problem(int(status[0])))
    data = out_buf.tobytes() if encode else b""
    offsets = out_off.tolist()
    result = [data[offsets[u] : offsets[u + 1]] for u in range(n_users)] if encode else []
    return FoldResult(feats, late, result)


def _problem(code: int) -> str:
    if code == TOO_LONG:
        return "a user's amount log spans 2**24 s or more; lower the grace period (it must stay under 100 days)"
    return "a user state record is corrupt (truncated, trailing bytes or unknown format); delete the key or replay"


def user_events(cols: TxnColumns, users: I64) -> UserEvents:
    """The fold's input from a batch's columns and each event's user index."""
    return UserEvents(users, cols.ts, cols.cents, cols.amount, cols.merchant_h, cols.category_h, cols.device_h,
                      cols.lat_e6, cols.lon_e6, cols.located)  # fmt: skip
