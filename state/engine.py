"""The store logic shared by the in-memory and Redis stores: key layout, batch fold, offset guard.

A backend only loads values (one round trip) and commits per-partition writes atomically with a
compare-and-set on the partition's offset; everything else happens here, so both behave alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from features.config import FeatureConfig
from features.fields import event_second, fields_of, id_hash
from features.merchant import apply_fraud_label, merchant_features, update_merchant_tx, view_with_tx
from features.spec import FEATURE_NAMES, STATIC_NAMES
from features.state import MerchantFraudRecord, MerchantTxRecord, MerchantView, UserState
from features.transform import fold_kernel, late_kernel, static_rows, user_kernel
from fraudstream.errors import InputError
from state.batch import LabelRecord, PartitionWrite, PreparedBatch, SourceRecord
from state.keys import Keys, ttl_seconds


@dataclass(frozen=True)
class Commit:
    """One partition's atomic write, in backend terms."""

    offset_key: str
    outputs_key: str
    write: PartitionWrite
    outputs: dict[int, bytes]


class KeyValueFeatureStore(ABC):
    """FeatureStore over a key-value backend. `partitions`: transactions topic partitions (and labels')."""

    def __init__(
        self,
        namespace: str,
        cfg: FeatureConfig,
        *,
        partitions: int = 6,
        label_partitions: int | None = None,
        user_key: Callable[[str], str] | None = None,
    ) -> None:
        self.keys = Keys(namespace)
        self.cfg = cfg
        self.partitions = partitions
        self.label_partitions = partitions if label_partitions is None else label_partitions
        self.ttl_s = ttl_seconds(cfg)
        self._user_key = user_key or (lambda user_id: user_id)
        self.counters: dict[str, int] = {
            "late_events": 0,
            "replayed_events": 0,
            "labels_applied": 0,
            "labels_unusable": 0,
            "labels_replayed": 0,
        }

    # backend -------------------------------------------------------------------------------------------
    @abstractmethod
    def _load(
        self, keys: list[str], hash_fields: dict[str, list[int]]
    ) -> tuple[list[bytes | None], dict[str, list[bytes | None]]]:
        """Values of `keys` and of the given offset fields of each hash, in one round trip."""

    @abstractmethod
    def _commit(self, commits: list[Commit]) -> None:
        """Apply each commit atomically; raise StateStoreError naming any partition whose offset moved."""

    @abstractmethod
    def _sizes(self, pattern: str, limit: int) -> list[int]:
        """Bytes used by up to `limit` keys matching `pattern`."""

    # FeatureStore ---------------------------------------------------------------------------------------
    def _check_partition(self, partition: int, limit: int, what: str) -> None:
        if not 0 <= partition < limit:
            raise InputError(f"{what} partition {partition} is outside 0..{limit - 1}; set topics.partitions to match")

    def prepare_batch(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        records = list(records)
        keys = self.keys
        fields = [fields_of(r.txn) for r in records]
        parts = sorted({r.partition for r in records})
        for p in parts:
            self._check_partition(p, self.partitions, "transactions")
        user_keys = [keys.user(r.partition, self._user_key(r.txn.user_id)) for r in records]
        merchants = sorted({r.txn.merchant_id for r in records})
        tx_keys = {(p, m): keys.merchant_tx(p, m) for m in merchants for p in range(self.partitions)}
        fraud_keys = {(p, m): keys.merchant_fraud(p, m) for m in merchants for p in range(self.label_partitions)}
        load = [keys.txn_offset(p) for p in parts] + sorted(set(user_keys)) + list(tx_keys.values())
        load += list(fraud_keys.values())
        wanted = {keys.outputs(p): [r.offset for r in records if r.partition == p] for p in parts}
        values, cached = self._load(load, wanted)
        raw = dict(zip(load, values, strict=True))
        stored_offset = {p: _as_offset(raw[keys.txn_offset(p)]) for p in parts}
        users = {k: UserState() if raw[k] is None else UserState.from_bytes(_b(raw[k])) for k in set(user_keys)}
        tx_records = {k: _tx(raw[k]) for k in tx_keys.values()}
        views = {
            m: MerchantView.merge(
                [tx_records[tx_keys[(p, m)]] for p in range(self.partitions)],
                [_fraud(raw[fraud_keys[(p, m)]]) for p in range(self.label_partitions)],
            )
            for m in merchants
        }
        n = len(records)
        vectors = np.full((n, len(FEATURE_NAMES)), np.nan)
        vectors[:, : len(STATIC_NAMES)] = static_rows(fields, self.cfg)
        late = np.zeros(n, dtype=bool)
        replayed = np.zeros(n, dtype=bool)
        outputs: list[bytes | None] = [None] * n
        cache_pos = {p: 0 for p in parts}
        writes: dict[int, PartitionWrite] = {}
        changed: dict[str, int] = {}
        cfg = self.cfg
        # a transaction at or after this second is never inside any later event's delayed window in this batch
        view_horizon = max((f.ts for f in fields), default=0) - cfg.delay_s
        for i, (rec, f, ukey) in enumerate(zip(records, fields, user_keys, strict=True)):
            p = rec.partition
            cache = cached[keys.outputs(p)][cache_pos[p]]
            cache_pos[p] += 1
            last = stored_offset[p]
            if last is not None and rec.offset <= last:
                replayed[i] = True
                vectors[i, :] = np.nan
                outputs[i] = cache
                continue
            write = writes.get(p)
            if write is None:
                low = min(r.offset for r in records if r.partition == p)
                write = writes[p] = PartitionWrite(last, rec.offset, low)
            write.new_offset = max(write.new_offset, rec.offset)
            write.offsets.append(rec.offset)
            user = users[ukey]
            merchant = rec.txn.merchant_id
            vectors[i, len(STATIC_NAMES) :] = user_kernel(user, f) + merchant_features(views[merchant], f.ts, cfg)
            if late_kernel(user, f.ts, cfg):
                late[i] = True
                continue
            users[ukey] = fold_kernel(user, f, cfg)
            tkey = tx_keys[(p, merchant)]
            tx_records[tkey] = update_merchant_tx(tx_records[tkey], f.ts, cfg)
            if f.ts <= view_horizon:
                views[merchant] = view_with_tx(views[merchant], f.ts)
            changed[ukey] = p
            changed[tkey] = p
        for key, p in sorted(changed.items()):
            value = users[key] if key in users else tx_records[key]
            writes[p].values[key] = value.to_bytes()
        self.counters["late_events"] += int(late.sum())
        self.counters["replayed_events"] += int(replayed.sum())
        return PreparedBatch(records, vectors, late, replayed, outputs, writes)

    def commit_batch(self, batch: PreparedBatch, outputs: Sequence[bytes | None]) -> None:
        if len(outputs) != len(batch.records):
            raise InputError(f"commit_batch got {len(outputs)} outputs for {len(batch.records)} records; give one each")
        by_offset: dict[int, dict[int, bytes]] = {p: {} for p in batch._writes}
        for rec, out, was_replayed in zip(batch.records, outputs, batch.replayed, strict=True):
            if out is not None and not was_replayed:
                by_offset[rec.partition][rec.offset] = bytes(out)
        commits = [
            Commit(self.keys.txn_offset(p), self.keys.outputs(p), w, by_offset[p])
            for p, w in sorted(batch._writes.items())
        ]
        if commits:
            self._commit(commits)

    def apply_labels(self, records: Sequence[LabelRecord]) -> int:
        records = list(records)
        keys = self.keys
        parts = sorted({r.partition for r in records})
        for p in parts:
            self._check_partition(p, self.label_partitions, "labels")
        usable = [_usable(r) for r in records]
        fkeys = sorted(
            {keys.merchant_fraud(r.partition, _merchant(r)) for r, ok in zip(records, usable, strict=True) if ok}
        )
        load = [keys.label_offset(p) for p in parts] + fkeys
        values, _ = self._load(load, {})
        raw = dict(zip(load, values, strict=True))
        stored = {p: _as_offset(raw[keys.label_offset(p)]) for p in parts}
        frauds = {k: _fraud(raw[k]) for k in fkeys}
        writes: dict[int, PartitionWrite] = {}
        applied = 0
        for rec, ok in zip(records, usable, strict=True):
            p, label = rec.partition, rec.label
            last = stored[p]
            if last is not None and rec.offset <= last:
                self.counters["labels_replayed"] += 1
                continue
            write = writes.setdefault(p, PartitionWrite(stored[p], rec.offset, 0))
            write.new_offset = max(write.new_offset, rec.offset)
            if not label.is_fraud:
                continue
            if not ok or label.transaction_timestamp is None:
                self.counters["labels_unusable"] += 1
                continue
            key = keys.merchant_fraud(p, _merchant(rec))
            frauds[key] = apply_fraud_label(
                frauds[key],
                event_second(label.transaction_timestamp),
                event_second(label.labelled_at),
                id_hash(label.transaction_id),
                self.cfg,
            )
            write.values[key] = frauds[key].to_bytes()
            applied += 1
        commits = [Commit(keys.label_offset(p), f"{keys.label_tag(p)}:out", w, {}) for p, w in sorted(writes.items())]
        if commits:
            self._commit(commits)
        self.counters["labels_applied"] += applied
        return applied

    def user_state(self, user_id: str) -> UserState | None:
        ukey = self._user_key(user_id)
        load = [self.keys.user(p, ukey) for p in range(self.partitions)]
        values, _ = self._load(load, {})
        found = [UserState.from_bytes(_b(v)) for v in values if v is not None]
        return max(found, key=lambda s: s.last_ts) if found else None

    def memory_report(self, limit: int = 100_000) -> dict[str, float]:
        users = self._sizes(self.keys.user_pattern(), limit)
        merchants = self._sizes(self.keys.merchant_pattern(), limit)
        report: dict[str, float] = {
            "users_measured": float(len(users)),
            "merchant_keys_measured": float(len(merchants)),
        }
        if users:
            arr = np.asarray(users, dtype=np.float64)
            report |= {
                "bytes_per_user_mean": float(arr.mean()),
                "bytes_per_user_p95": float(np.percentile(arr, 95)),
                "bytes_per_user_max": float(arr.max()),
            }
        if merchants:
            report["bytes_per_merchant_key_mean"] = float(np.mean(merchants))
        return report


def _b(value: bytes | None) -> bytes:
    assert value is not None
    return value


def _as_offset(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def _tx(value: bytes | None) -> MerchantTxRecord:
    return MerchantTxRecord() if value is None else MerchantTxRecord.from_bytes(value)


def _fraud(value: bytes | None) -> MerchantFraudRecord:
    return MerchantFraudRecord() if value is None else MerchantFraudRecord.from_bytes(value)


def _usable(rec: LabelRecord) -> bool:
    return rec.label.merchant_id is not None and rec.label.transaction_timestamp is not None


def _merchant(rec: LabelRecord) -> str:
    assert rec.label.merchant_id is not None
    return rec.label.merchant_id
