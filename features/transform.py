"""Pure feature functions: `extract` reads the state before the event, `update_user` folds the event in.

No storage, no broker, no clock: event time is the transaction's timestamp, in whole seconds.
The `*_kernel` functions take primitives so the offline builder folds exactly the same code.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from operator import mul

import numpy as np
import numpy.typing as npt

from features.config import DAY_S, FeatureConfig
from features.fields import MISSING, TxnFields, fields_of
from features.merchant import merchant_features
from features.spec import FEATURE_NAMES, USER_WINDOWS
from features.state import MAX_CATEGORIES, MAX_DEVICES, MAX_MERCHANTS, MerchantView, UserState
from features.static import static_features
from fraudstream.contracts import Transaction

EARTH_RADIUS_KM = 6371.0088
NO_HISTORY_INTERVAL_S = 30.0 * DAY_S
WIDEST_WINDOW_S = USER_WINDOWS[-1][1]
HOME_N_CAP = 64
STD_FLOOR_CENTS = 100.0
_MIN_TRAVEL_H = 1.0 / 60.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    s1, s2 = math.sin(dp / 2), math.sin(dl / 2)
    a = s1 * s1 + math.cos(p1) * math.cos(p2) * (s2 * s2)  # products, not ** 2: libm's pow may differ by an ulp
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def user_kernel(user: UserState, f: TxnFields) -> list[float]:
    """Columns USER_NAMES for event `f` against the state before it."""
    return history_kernel(user, f) + window_kernel(user, f) + sequence_kernel(user, f)


def history_kernel(user: UserState, f: TxnFields) -> list[float]:
    """seconds_since_last, first_transaction, amount_change_vs_last, amount_ratio_vs_last."""
    if not user.n_total:
        return [NO_HISTORY_INTERVAL_S, 1.0, 0.0, 1.0]
    last_amount = user.last_cents / 100.0
    return [float(max(f.ts - user.last_ts, 0)), 0.0, f.amount - last_amount, f.amount / max(last_amount, 0.01)]


def window_kernel(user: UserState, f: TxnFields) -> list[float]:
    """amount_ratio_mean_*/amount_zscore_* (previous windows), then count/mean/max/min_* (this one included)."""
    ts, cents = f.ts, f.cents
    log_ts, log_cents = user.log_ts, user.log_cents
    hi = bisect_right(log_ts, ts)
    out: list[float] = []
    counts: list[float] = []
    for name, width in USER_WINDOWS:
        window = log_cents[bisect_right(log_ts, ts - width, 0, hi) : hi]
        n = len(window)
        if n:
            total = sum(window)
            counts += [
                n + 1.0,
                (total + cents) / (n + 1) / 100.0,
                max(max(window), cents) / 100.0,
                min(min(window), cents) / 100.0,
            ]
            if name != "1h":  # the previous-window comparisons (MEAN_WINDOWS)
                out += zscore_pair(cents, total, sum(map(mul, window, window)), n)
        else:
            counts += [1.0, cents / 100.0, cents / 100.0, cents / 100.0]
            if name != "1h":
                out += [1.0, 0.0]
    return out + counts


def zscore_pair(cents: int, total: int, squares: int, n: int) -> list[float]:
    """Ratio to the previous window's mean and z-score against it (all in cents)."""
    mean = total / n
    var = float(squares) / n - mean * mean  # float() first: the compiled fold rounds its 128-bit sum the same way
    std = math.sqrt(var) if var > 0.0 else 0.0
    return [cents / max(mean, 1.0), (cents - mean) / max(std, STD_FLOOR_CENTS)]


def sequence_kernel(user: UserState, f: TxnFields) -> list[float]:
    """Location columns, then new_merchant/new_category/new_device/distinct_merchants_1d."""
    out = _location(user, f)
    out.append(float(f.merchant_h not in user.merchants))
    out.append(float(f.category_h != MISSING and f.category_h not in user.categories))
    out.append(float(f.device_h != MISSING and f.device_h not in user.devices))
    recent_ts = user.recent_ts
    rhi = bisect_right(recent_ts, f.ts)
    recent = set(user.recent_merchants[bisect_right(recent_ts, f.ts - DAY_S, 0, rhi) : rhi])
    recent.add(f.merchant_h)
    out.append(float(len(recent)))
    return out


def _location(user: UserState, f: TxnFields) -> list[float]:
    if f.lat_e6 is None or f.lon_e6 is None:
        return [0.0, 0.0, 0.0, 1.0]
    lat, lon = f.lat_e6 / 1e6, f.lon_e6 / 1e6
    home_km = 0.0 if user.home is None else haversine_km(lat, lon, user.home[0] / 1e6, user.home[1] / 1e6)
    if user.prev_coord is None:
        return [0.0, home_km, 0.0, 1.0]
    plat, plon, pts = user.prev_coord
    prev_km = haversine_km(lat, lon, plat / 1e6, plon / 1e6)
    hours = max((f.ts - pts) / 3600.0, _MIN_TRAVEL_H)
    return [prev_km, home_km, prev_km / hours, 0.0]


def _mru(ids: tuple[int, ...], h: int, cap: int) -> tuple[int, ...]:
    if ids and ids[0] == h:
        return ids
    if h in ids:
        i = ids.index(h)
        return (h, *ids[:i], *ids[i + 1 :])
    return (h, *ids[: cap - 1])


def _insert(
    ts_seq: tuple[int, ...], val_seq: tuple[int, ...], ts: int, val: int, horizon: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Insert (ts, val) after equal times, then drop entries at or before `horizon`."""
    if not ts_seq or ts >= ts_seq[-1]:
        ts_seq, val_seq = (*ts_seq, ts), (*val_seq, val)
    else:
        i = bisect_right(ts_seq, ts)
        ts_seq, val_seq = (*ts_seq[:i], ts, *ts_seq[i:]), (*val_seq[:i], val, *val_seq[i:])
    lo = bisect_right(ts_seq, horizon)
    return (ts_seq[lo:], val_seq[lo:]) if lo else (ts_seq, val_seq)


def fold_kernel(user: UserState, f: TxnFields, cfg: FeatureConfig, *, with_log: bool = True) -> UserState:
    """The state after event `f` (the caller has already checked it is not late).

    with_log=False leaves the amount log empty: for the offline path, which computes windows vectorised.
    """
    ts = f.ts
    newest = ts >= user.last_ts
    last_ts = ts if newest else user.last_ts
    grace = cfg.grace_s
    log_ts, log_cents = user.log_ts, user.log_cents
    if with_log:
        log_ts, log_cents = _insert(log_ts, log_cents, ts, f.cents, last_ts - grace - WIDEST_WINDOW_S)
    recent_ts, recent_m = _insert(user.recent_ts, user.recent_merchants, ts, f.merchant_h, last_ts - grace - DAY_S)
    prev_coord, home = user.prev_coord, user.home
    if f.lat_e6 is not None and f.lon_e6 is not None:
        if prev_coord is None or ts >= prev_coord[2]:
            prev_coord = (f.lat_e6, f.lon_e6, ts)
        if home is None:
            home = (f.lat_e6, f.lon_e6, 1)
        else:
            n = min(home[2] + 1, HOME_N_CAP)
            home = (home[0] + round((f.lat_e6 - home[0]) / n), home[1] + round((f.lon_e6 - home[1]) / n), n)
    return UserState(
        last_ts=last_ts,
        last_cents=f.cents if newest else user.last_cents,
        n_total=min(user.n_total + 1, 2**32 - 1),
        prev_coord=prev_coord,
        home=home,
        log_ts=log_ts,
        log_cents=log_cents,
        recent_ts=recent_ts,
        recent_merchants=recent_m,
        merchants=_mru(user.merchants, f.merchant_h, MAX_MERCHANTS),
        categories=user.categories if f.category_h == MISSING else _mru(user.categories, f.category_h, MAX_CATEGORIES),
        devices=user.devices if f.device_h == MISSING else _mru(user.devices, f.device_h, MAX_DEVICES),
    )


def late_kernel(user: UserState, ts: int, cfg: FeatureConfig) -> bool:
    return user.n_total > 0 and ts < user.last_ts - cfg.grace_s


def static_rows(fields: list[TxnFields], cfg: FeatureConfig) -> npt.NDArray[np.float64]:
    """STATIC_NAMES columns for a batch of events, vectorised."""
    return static_features(
        np.fromiter((f.ts for f in fields), np.int64, len(fields)),
        np.fromiter((f.amount for f in fields), np.float64, len(fields)),
        np.fromiter((f.channel for f in fields), np.int64, len(fields)),
        np.fromiter((f.category_h for f in fields), np.int64, len(fields)),
        np.fromiter((f.device_h for f in fields), np.int64, len(fields)),
        np.fromiter((f.country_missing for f in fields), np.bool_, len(fields)),
        cfg,
    )


def extract(user: UserState, merchant: MerchantView, txn: Transaction, cfg: FeatureConfig) -> npt.NDArray[np.float64]:
    """The feature vector (FEATURE_NAMES order, float64) of `txn` given the states before it."""
    f = fields_of(txn)
    row = static_rows([f], cfg)[0].tolist() + user_kernel(user, f) + merchant_features(merchant, f.ts, cfg)
    vector = np.asarray(row, dtype=np.float64)
    assert vector.shape == (len(FEATURE_NAMES),)
    return vector


def update_user(user: UserState, txn: Transaction, cfg: FeatureConfig) -> UserState:
    return fold_kernel(user, fields_of(txn), cfg)


def is_late(user: UserState, txn: Transaction, cfg: FeatureConfig) -> bool:
    """True when the event is older than the user's watermark minus the grace period."""
    return late_kernel(user, fields_of(txn).ts, cfg)
