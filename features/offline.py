"""Offline feature building for training: the online fold over a frame sorted by event time.

Static and merchant columns are vectorised (same definitions, integer counts, same divisions); the per-user
columns come from the compiled fold the online store uses (`features.user_fold`), one user group after another.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.config import FeatureConfig
from features.fields import CHANNEL_CODES, MISSING, TxnColumns, id_hash
from features.spec import FEATURE_NAMES, MERCHANT_NAMES, MERCHANT_WINDOWS, STATIC_NAMES, USER_NAMES
from features.static import static_columns
from features.user_fold import fold_user_batch, user_events
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
    here = np.arange(n)  # rows before this one at the same merchant: earlier in the stream (sorted position)
    # queries in sorted order are sorted too: searchsorted walks memory forward instead of jumping
    sorted_end = sorted_key - cfg.delay_s
    fm, fts = mcode[fraud_rows], ts[fraud_rows]
    out = np.zeros((n, len(MERCHANT_NAMES)), dtype=np.float64)
    for j, (_, width) in enumerate(MERCHANT_WINDOWS):
        hi = np.minimum(np.searchsorted(sorted_key, sorted_end, "right"), here)
        lo = np.minimum(np.searchsorted(sorted_key, sorted_end - width, "right"), hi)
        count = hi - lo
        # a fraud at s known at `at` counts for events at t in [max(s + delay, at), s + delay + width)
        start = np.maximum(fts + cfg.delay_s, fraud_at)
        stop = fts + cfg.delay_s + width
        ok = start < stop
        diff = np.zeros(n + 1, dtype=np.int64)
        np.add.at(diff, np.searchsorted(sorted_key, (fm[ok] << 32) | start[ok], "left"), 1)
        np.add.at(diff, np.searchsorted(sorted_key, (fm[ok] << 32) | stop[ok], "left"), -1)
        frauds = np.cumsum(diff)[:n]
        out[order, 2 * j] = count
        with np.errstate(invalid="ignore", divide="ignore"):
            out[order, 2 * j + 1] = np.where(count > 0, np.minimum(frauds, count) / np.maximum(count, 1), 0.0)
    return out


def build_features(transactions: pd.DataFrame, labels: pd.DataFrame | None, cfg: FeatureConfig) -> pd.DataFrame:
    """Features of every transaction, in event-time order (stable), exactly as the online store folds them."""
    _validate(transactions)
    ts_all = _utc_seconds(transactions["timestamp"])
    order = np.argsort(ts_all, kind="stable")
    df = transactions.iloc[order].reset_index(drop=True)
    ts = ts_all[order]
    n = len(df)
    amount = pd.to_numeric(df["amount"]).to_numpy(dtype=np.float64)
    ids = {c: df[c].astype(str).str.strip() for c in ID_COLUMNS}
    lat, lon = _e6(df, "latitude", n), _e6(df, "longitude", n)
    located = ~(np.isnan(lat) | np.isnan(lon))
    cols = TxnColumns(
        ts=ts,
        cents=np.rint(amount * 100.0).astype(np.int64),
        amount=amount,
        merchant_h=_codes(ids["merchant_id"], id_hash),
        category_h=_codes(df["merchant_category"], id_hash) if "merchant_category" in df else np.full(n, MISSING),
        device_h=_codes(df["device_id"], id_hash) if "device_id" in df else np.full(n, MISSING),
        lat_e6=np.where(located, np.nan_to_num(lat), 0).astype(np.int64),
        lon_e6=np.where(located, np.nan_to_num(lon), 0).astype(np.int64),
        located=located,
        channel=_codes(df["channel"], _channel_code) if "channel" in df else np.full(n, MISSING),
        country_missing=df["country"].isna().to_numpy() if "country" in df else np.ones(n, dtype=bool),
    )
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64, order="F")  # column-major: the frame takes it as is
    s, u = len(STATIC_NAMES), len(USER_NAMES)
    out[:, :s] = static_columns(cols, cfg)
    user_codes, uniques = pd.factorize(ids["user_id"])
    fold = fold_user_batch([b""] * len(uniques), user_events(cols, user_codes.astype(np.int64)), cfg, encode=False)
    out[:, s : s + u] = fold.features
    mcode, _ = pd.factorize(ids["merchant_id"])
    fraud_rows, fraud_at = _fraud_events(df, ts, labels, cfg)
    out[:, s + u :] = merchant_block(mcode.astype(np.int64), ts, fraud_rows, fraud_at, cfg)
    result = pd.DataFrame({c: ids[c] for c in ID_COLUMNS})
    result["timestamp"] = pd.to_datetime(ts, unit="s", utc=True)
    if "is_fraud" in df.columns:
        result["is_fraud"] = df["is_fraud"].to_numpy()
    result["late"] = fold.late
    return pd.concat([result, pd.DataFrame(out, columns=list(FEATURE_NAMES), copy=False)], axis=1)


def _channel_code(channel: str) -> int:
    return CHANNEL_CODES.get(channel, MISSING)


def _e6(df: pd.DataFrame, col: str, n: int) -> npt.NDArray[np.float64]:
    if col not in df.columns:
        return np.full(n, np.nan)
    values: npt.NDArray[np.float64] = np.rint(pd.to_numeric(df[col]).to_numpy(dtype=np.float64) * 1e6)
    return values


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
