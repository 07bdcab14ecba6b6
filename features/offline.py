"""Offline feature building for training: the online kernels folded over a frame sorted by event time.

Static and merchant columns are vectorised (same definitions, integer counts, same divisions); the
per-user columns fold `user_kernel`/`fold_kernel` row by row, exactly as the store does online.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.config import FeatureConfig
from features.fields import CHANNEL_CODES, MISSING, TxnFields, id_hash
from features.offline_windows import window_block
from features.spec import FEATURE_NAMES, MERCHANT_NAMES, MERCHANT_WINDOWS, STATIC_NAMES, USER_NAMES
from features.state import UserState
from features.static import static_features
from features.transform import fold_kernel, history_kernel, late_kernel, sequence_kernel
from fraudstream.contracts import MAX_AMOUNT, MAX_EVENT_TIME, MIN_EVENT_TIME, Transaction
from fraudstream.errors import InputError

REQUIRED = ("transaction_id", "user_id", "timestamp", "amount", "merchant_id")
OPTIONAL = ("currency", "merchant_category", "channel", "latitude", "longitude", "country", "device_id")
ID_COLUMNS = ("transaction_id", "user_id", "merchant_id")


def _utc_seconds(column: pd.Series) -> npt.NDArray[np.int64]:
    ts = pd.to_datetime(column, utc=True)
    if ts.isna().any():
        raise InputError(f"timestamp is missing or unparsable in {int(ts.isna().sum())} rows; fix the input file")
    low, high = pd.Timestamp(MIN_EVENT_TIME), pd.Timestamp(MAX_EVENT_TIME)
    bad = (ts < low) | (ts >= high)
    if bad.any():
        raise InputError(f"{int(bad.sum())} timestamps are outside [2000-01-01, 2100-01-01), e.g. {ts[bad].iloc[0]}")
    seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.int64)


def _codes(values: pd.Series, encode: Any) -> npt.NDArray[np.int64]:
    """Encode each distinct non-missing value once; missing values get MISSING."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.fromiter((encode(str(u)) for u in uniques), np.int64, len(uniques))
    return np.where(codes < 0, MISSING, table[codes] if len(table) else MISSING)


def _validate(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"transactions frame lacks column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}")
    amount = pd.to_numeric(df["amount"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(amount) | (amount < 0) | (amount > MAX_AMOUNT)
    if bad.any():
        raise InputError(f"{int(bad.sum())} amounts are missing, not finite or outside [0, {MAX_AMOUNT:g}]")
    for col in ID_COLUMNS:
        if df[col].isna().any():
            raise InputError(f"column {col} is empty in {int(df[col].isna().sum())} rows; every row needs one")


def _fraud_events(
    df: pd.DataFrame, ts: npt.NDArray[np.int64], labels: pd.DataFrame | None, cfg: FeatureConfig
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row positions (in `df`) of known frauds and when each label became known (seconds)."""
    delay = cfg.delay_s
    known: dict[int, int] = {}
    if "is_fraud" in df.columns:
        flags = df["is_fraud"].fillna(0).to_numpy().astype(bool)
        for row in np.flatnonzero(flags).tolist():
            known[row] = int(ts[row]) + delay
    if labels is not None and len(labels):
        if "transaction_id" not in labels.columns or "is_fraud" not in labels.columns:
            raise InputError("labels frame needs columns transaction_id and is_fraud (and optionally labelled_at)")
        position = pd.Series(np.arange(len(df)), index=df["transaction_id"].astype(str))
        position = position[~position.index.duplicated()]
        lab = labels.assign(transaction_id=labels["transaction_id"].astype(str))
        lab = lab[lab["transaction_id"].isin(position.index)]
        at = _utc_seconds(lab["labelled_at"]) if "labelled_at" in lab.columns else None
        overridden: dict[int, int | None] = {}
        for k, (tid, fraud) in enumerate(zip(lab["transaction_id"], lab["is_fraud"], strict=True)):
            pos = int(position[tid])
            when = max(int(at[k]), int(ts[pos])) if at is not None else int(ts[pos]) + delay
            previous = overridden.get(pos)
            if bool(fraud):
                overridden[pos] = when if previous is None else min(previous, when)
            else:
                overridden.setdefault(pos, None)
        for row, known_at in overridden.items():
            if known_at is None:
                known.pop(row, None)
            else:
                known[row] = known_at
    rows = np.fromiter(known.keys(), np.int64, len(known))
    return rows, np.fromiter(known.values(), np.int64, len(known))


def merchant_block(
    mcode: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    fraud_rows: npt.NDArray[np.int64],
    fraud_at: npt.NDArray[np.int64],
    cfg: FeatureConfig,
) -> npt.NDArray[np.float64]:
    """MERCHANT_NAMES columns for rows in stream order (vectorised `merchant_features`)."""
    n = len(ts)
    key = (mcode << 32) | ts
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)  # rows before this one at the same merchant: earlier in the stream
    end = ts - cfg.delay_s
    fm, fts = mcode[fraud_rows], ts[fraud_rows]
    out = np.zeros((n, len(MERCHANT_NAMES)), dtype=np.float64)
    for j, (_, width) in enumerate(MERCHANT_WINDOWS):
        hi = np.minimum(np.searchsorted(sorted_key, (mcode << 32) | end, "right"), pos)
        lo = np.minimum(np.searchsorted(sorted_key, (mcode << 32) | (end - width), "right"), hi)
        count = hi - lo
        # a fraud at s known at `at` counts for events at t in [max(s + delay, at), s + delay + width)
        start = np.maximum(fts + cfg.delay_s, fraud_at)
        stop = fts + cfg.delay_s + width
        ok = start < stop
        diff = np.zeros(n + 1, dtype=np.int64)
        np.add.at(diff, np.searchsorted(sorted_key, (fm[ok] << 32) | start[ok], "left"), 1)
        np.add.at(diff, np.searchsorted(sorted_key, (fm[ok] << 32) | stop[ok], "left"), -1)
        frauds = np.cumsum(diff)[:n][pos]
        out[:, 2 * j] = count
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 2 * j + 1] = np.where(count > 0, np.minimum(frauds, count) / np.maximum(count, 1), 0.0)
    return out


def build_features(
    transactions: pd.DataFrame, labels: pd.DataFrame | None, cfg: FeatureConfig, *, workers: int | None = None
) -> pd.DataFrame:
    """Features of every transaction, in event-time order (stable), exactly as the online store folds them.

    `workers`: processes for the per-user fold (default: up to 2 CPUs; 1 = no fork).
    """
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, workers)
    _validate(transactions)
    ts_all = _utc_seconds(transactions["timestamp"])
    order = np.argsort(ts_all, kind="stable")
    df = transactions.iloc[order].reset_index(drop=True)
    ts = ts_all[order]
    n = len(df)
    amount = pd.to_numeric(df["amount"]).to_numpy(dtype=np.float64)
    cents = np.rint(amount * 100.0).astype(np.int64)
    ids = {c: df[c].astype(str).str.strip() for c in ID_COLUMNS}
    merchant_h = _codes(ids["merchant_id"], id_hash)
    category_h = _codes(df["merchant_category"], id_hash) if "merchant_category" in df else np.full(n, MISSING)
    device_h = _codes(df["device_id"], id_hash) if "device_id" in df else np.full(n, MISSING)
    channel = _codes(df["channel"], lambda c: CHANNEL_CODES.get(c, MISSING)) if "channel" in df else np.full(n, MISSING)
    country_missing = df["country"].isna().to_numpy() if "country" in df else np.ones(n, dtype=bool)
    lat = _e6(df, "latitude", n)
    lon = _e6(df, "longitude", n)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    s, u = len(STATIC_NAMES), len(USER_NAMES)
    out[:, :s] = static_features(ts, amount, channel, category_h, device_h, country_missing, cfg)
    user_codes, _ = pd.factorize(ids["user_id"])
    out[:, _WINDOWS] = window_block(user_codes, ts, cents)
    late = _fold_users(user_codes, ts, cents, amount, merchant_h, category_h, device_h, lat, lon, cfg, out, workers)
    mcode, _ = pd.factorize(ids["merchant_id"])
    fraud_rows, fraud_at = _fraud_events(df, ts, labels, cfg)
    out[:, s + u :] = merchant_block(mcode.astype(np.int64), ts, fraud_rows, fraud_at, cfg)
    result = pd.DataFrame({c: ids[c] for c in ID_COLUMNS})
    result["timestamp"] = pd.to_datetime(ts, unit="s", utc=True)
    if "is_fraud" in df.columns:
        result["is_fraud"] = df["is_fraud"].to_numpy()
    result["late"] = late
    return pd.concat([result, pd.DataFrame(out, columns=list(FEATURE_NAMES))], axis=1)


def _e6(df: pd.DataFrame, col: str, n: int) -> npt.NDArray[np.float64]:
    if col not in df.columns:
        return np.full(n, np.nan)
    values: npt.NDArray[np.float64] = np.rint(pd.to_numeric(df[col]).to_numpy(dtype=np.float64) * 1e6)
    return values


_FOLD_INPUT: dict[str, Any] = {}
_S, _U = len(STATIC_NAMES), len(USER_NAMES)
#: Output columns of the sequential fold (history + location/novelty); the window columns are vectorised.
_SEQUENTIAL = np.r_[_S : _S + 4, _S + _U - 8 : _S + _U]
_WINDOWS = np.r_[_S + 4 : _S + _U - 8]


def _fold_users(
    user_codes: npt.NDArray[np.intp],
    ts: npt.NDArray[np.int64],
    cents: npt.NDArray[np.int64],
    amount: npt.NDArray[np.float64],
    merchant_h: npt.NDArray[np.int64],
    category_h: npt.NDArray[np.int64],
    device_h: npt.NDArray[np.int64],
    lat: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
    cfg: FeatureConfig,
    out: npt.NDArray[np.float64],
    workers: int,
) -> npt.NDArray[np.bool_]:
    """Fold the per-user kernels in stream order into `out`'s USER_NAMES columns; returns late flags.

    Users are independent, so with workers > 1 they are split by user code over forked processes.
    """
    arrays = (user_codes, ts, cents, amount, merchant_h, category_h, device_h, lat, lon)
    late = np.zeros(len(ts), dtype=bool)
    if workers <= 1 or len(ts) < 100_000:
        rows, late_part = _fold_rows(np.arange(len(ts)), arrays, cfg)
        out[:, _SEQUENTIAL] = rows
        return late_part
    groups = [np.flatnonzero(user_codes % workers == g) for g in range(workers)]
    _FOLD_INPUT.update(arrays=arrays, cfg=cfg)
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            for idx, (rows, late_part) in zip(
                groups, pool.map(_fold_group, range(workers), [workers] * workers), strict=True
            ):
                out[np.ix_(idx, _SEQUENTIAL)] = rows
                late[idx] = late_part
    finally:
        _FOLD_INPUT.clear()
    return late


def _fold_group(group: int, workers: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    arrays = _FOLD_INPUT["arrays"]
    return _fold_rows(np.flatnonzero(arrays[0] % workers == group), arrays, _FOLD_INPUT["cfg"])


def _fold_rows(
    idx: npt.NDArray[np.intp], arrays: tuple[npt.NDArray[Any], ...], cfg: FeatureConfig
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    user_codes, ts, cents, amount, merchant_h, category_h, device_h, lat, lon = (a[idx] for a in arrays)
    n = len(idx)
    states: dict[int, UserState] = {}
    empty = UserState()
    late = np.zeros(n, dtype=bool)
    located = ~(np.isnan(lat) | np.isnan(lon))
    lat_i = [int(v) if ok else None for v, ok in zip(lat.tolist(), located.tolist(), strict=True)]
    lon_i = [int(v) if ok else None for v, ok in zip(lon.tolist(), located.tolist(), strict=True)]
    rows: list[list[float]] = []
    columns = zip(
        user_codes.tolist(),
        ts.tolist(),
        cents.tolist(),
        amount.tolist(),
        merchant_h.tolist(),
        category_h.tolist(),
        device_h.tolist(),
        lat_i,
        lon_i,
        strict=True,
    )
    for i, (code, t, c, a, mh, ch, dh, la, lo) in enumerate(columns):
        f = TxnFields(t, c, a, mh, ch, dh, la, lo, MISSING, False)
        state = states.get(code, empty)
        rows.append(history_kernel(state, f) + sequence_kernel(state, f))
        if late_kernel(state, t, cfg):
            late[i] = True
        else:
            states[code] = fold_kernel(state, f, cfg, with_log=False)
    return np.asarray(rows, dtype=np.float64).reshape(n, len(_SEQUENTIAL)), late


def transactions_from_frame(df: pd.DataFrame) -> Iterator[Transaction]:
    """Validated Transactions from a frame with the Transaction field names (NaN optional fields: absent)."""
    fields = [c for c in (*REQUIRED, *OPTIONAL) if c in df.columns]
    for record in df[fields].to_dict("records"):
        clean = {k: v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for k, v in record.items()}
        clean = {k: v for k, v in clean.items() if not _is_missing(v)}
        for k in ID_COLUMNS:
            clean[k] = str(clean[k])
        yield Transaction.model_validate(clean)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
