"""Per-merchant (terminal) features over delayed windows, and the merchant record updates.

Window for an event at t: (t - delay - n days, t - delay]; count = transactions in it, risk = frauds in it
whose label was known at t (labelled_at <= t) / count, 0 when empty (the handbook's definition).
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

from features.config import DAY_S, FeatureConfig
from features.spec import MERCHANT_WINDOWS
from features.state import FraudEntry, MerchantFraudRecord, MerchantTxRecord, MerchantView

#: Longest window plus margin kept in merchant records, beyond the label delay and grace.
_RETENTION_EXTRA_S = 30 * DAY_S + DAY_S


@lru_cache(maxsize=64)
def merchant_retention_s(cfg: FeatureConfig) -> int:
    return cfg.delay_s + cfg.grace_s + _RETENTION_EXTRA_S


def merchant_features(view: MerchantView, ts: int, cfg: FeatureConfig) -> list[float]:
    """Columns MERCHANT_NAMES for an event at second `ts`."""
    end = ts - cfg.delay_s
    tx, fraud_ts, fraud_at = view.tx_ts, view.fraud_ts, view.fraud_labelled_at
    hi = bisect_right(tx, end)
    fhi = bisect_right(fraud_ts, end)
    out: list[float] = []
    for _, width in MERCHANT_WINDOWS:
        count = hi - bisect_right(tx, end - width, 0, hi)
        flo = bisect_right(fraud_ts, end - width, 0, fhi)
        frauds = sum(1 for at in fraud_at[flo:fhi] if at <= ts)
        out.append(float(count))
        out.append(min(frauds, count) / count if count else 0.0)
    return out


def view_with_tx(view: MerchantView, ts: int) -> MerchantView:
    """The view after one more transaction at `ts` (so later events of the same batch see it)."""
    tx = view.tx_ts
    if not tx or ts >= tx[-1]:
        return MerchantView((*tx, ts), view.fraud_ts, view.fraud_labelled_at)
    i = bisect_right(tx, ts)
    return MerchantView((*tx[:i], ts, *tx[i:]), view.fraud_ts, view.fraud_labelled_at)


def update_merchant_tx(record: MerchantTxRecord, ts: int, cfg: FeatureConfig) -> MerchantTxRecord:
    """Add one transaction at `ts`, dropping seconds older than the retention before the newest."""
    tx = record.tx_ts
    if not tx or ts >= tx[-1]:
        tx = (*tx, ts)
    else:
        i = bisect_right(tx, ts)
        tx = (*tx[:i], ts, *tx[i:])
    lo = bisect_right(tx, tx[-1] - merchant_retention_s(cfg))
    return MerchantTxRecord(tx[lo:] if lo else tx)


def apply_fraud_label(
    record: MerchantFraudRecord, txn_ts: int, labelled_at: int, txn_hash: int, cfg: FeatureConfig
) -> MerchantFraudRecord:
    """Record one fraud verdict; one entry per transaction, keeping the earliest labelled_at."""
    labelled_at = max(labelled_at, txn_ts)
    kept = [e for e in record.entries if e.txn_hash != txn_hash]
    earliest = min([labelled_at] + [e.labelled_at for e in record.entries if e.txn_hash == txn_hash])
    kept.append(FraudEntry(txn_ts, earliest, txn_hash))
    newest = max(e.labelled_at for e in kept)
    horizon = newest - merchant_retention_s(cfg) - _RETENTION_EXTRA_S
    kept = [e for e in kept if e.txn_ts > horizon]
    kept.sort(key=lambda e: (e.txn_ts, e.txn_hash))
    return MerchantFraudRecord(tuple(kept))
