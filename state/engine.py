"""The store logic shared by the in-memory and Redis stores: key layout, batch fold, offset guard.

A backend only loads values (one round trip) and commits per-partition writes atomically with a
compare-and-set on the partition's offset; everything else happens here, so both behave alike.
"""

from __future__ import annotations

import time
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
from state.cache import EXPIRY_MARGIN_S, NEVER, StateCache
from state.keys import Keys, ttl_seconds

Decoder = Callable[[bytes | None], object]
MAX_KEY_NAMES = 200_000


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
        self.cache = StateCache()
        #: per transactions partition, cached outputs from this offset on are kept by the next commit: the first
        #: offset of the last batch that held it (an engine may commit batch n here before batch n-1's Kafka
        #: transaction ends, and batch n-1 may have been all replays), or earlier, see keep_outputs_from
        self._kept_from: dict[int, int] = {}
        #: per transactions partition, the first offset of the engine's uncommitted Kafka transaction
        self._unsettled_from: dict[int, int] = {}
        self._key_names: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.monotonic: Callable[[], float] = time.monotonic  # the clock TTLs run on (wall time, not event time)
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
    def _ttls(self, keys: list[str]) -> list[float]:
        """Seconds each key has left before it expires (inf: never; 0 or less: gone), in one round trip."""

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
        names = [self._merchant_keys(m) for m in merchants]
        offsets = self._offsets(
            {keys.txn_tag(p): keys.txn_offset(p) for p in range(self.partitions)}
            | {keys.label_tag(p): keys.label_offset(p) for p in range(self.label_partitions)}
        )
        stored_offset = {p: offsets[keys.txn_tag(p)] for p in parts}
        replays: dict[str, list[int]] = {}
        for r in records:
            last = stored_offset[r.partition]
            if last is not None and r.offset <= last:
                replays.setdefault(keys.outputs(r.partition), []).append(r.offset)
        groups: list[tuple[str, list[str], Decoder]] = [
            (keys.txn_tag(p), sorted({k for k, r in zip(user_keys, records, strict=True) if r.partition == p}), _user)
            for p in parts
        ]
        groups += [(keys.txn_tag(p), [tx[p] for tx, _ in names], _tx) for p in range(self.partitions)]
        groups += [(keys.label_tag(p), [fr[p] for _, fr in names], _fraud) for p in range(self.label_partitions)]
        states, cached = self._fetch(groups, replays)
        users: dict[str, UserState] = {k: states[k] for k in set(user_keys)}  # type: ignore[misc]
        tx_records: dict[str, MerchantTxRecord] = {k: states[k] for tx, _ in names for k in tx}  # type: ignore[misc]
        views = {
            m: MerchantView.merge(
                [tx_records[k] for k in tx],
                [states[k] for k in fr],  # type: ignore[misc]
            )
            for m, (tx, fr) in zip(merchants, names, strict=True)
        }
        tx_key_of = {m: tx for m, (tx, _) in zip(merchants, names, strict=True)}
        n = len(records)
        vectors = np.full((n, len(FEATURE_NAMES)), np.nan)
        vectors[:, : len(STATIC_NAMES)] = static_rows(fields, self.cfg)
        late = np.zeros(n, dtype=bool)
        replayed = np.zeros(n, dtype=bool)
        outputs: list[bytes | None] = [None] * n
        replayed_outputs = {key: iter(values) for key, values in cached.items()}
        folded: list[int] = []
        rows: list[list[float]] = []
        writes: dict[int, PartitionWrite] = {}
        changed: dict[str, int] = {}
        cfg = self.cfg
        # a transaction at or after this second is never inside any later event's delayed window in this batch
        view_horizon = max((f.ts for f in fields), default=0) - cfg.delay_s
        for i, (rec, f, ukey) in enumerate(zip(records, fields, user_keys, strict=True)):
            p = rec.partition
            last = stored_offset[p]
            if last is not None and rec.offset <= last:
                replayed[i] = True
                vectors[i, :] = np.nan
                outputs[i] = next(replayed_outputs[keys.outputs(p)])
                continue
            write = writes.get(p)
            if write is None:
                low = min(r.offset for r in records if r.partition == p)
                # the previous batch's outputs stay too: its Kafka transaction may still be in flight (and abort)
                write = writes[p] = PartitionWrite(last, rec.offset, min(low, self._kept_from.get(p, low)))
            write.new_offset = max(write.new_offset, rec.offset)
            write.offsets.append(rec.offset)
            user = users[ukey]
            merchant = rec.txn.merchant_id
            folded.append(i)
            rows.append(user_kernel(user, f) + merchant_features(views[merchant], f.ts, cfg))
            if late_kernel(user, f.ts, cfg):
                late[i] = True
                continue
            users[ukey] = fold_kernel(user, f, cfg)
            tkey = tx_key_of[merchant][p]
            tx_records[tkey] = update_merchant_tx(tx_records[tkey], f.ts, cfg)
            if f.ts <= view_horizon:
                views[merchant] = view_with_tx(views[merchant], f.ts)
            changed[ukey] = p
            changed[tkey] = p
        for key, p in sorted(changed.items()):
            value = users[key] if key in users else tx_records[key]
            writes[p].values[key] = value.to_bytes()
            writes[p].states[key] = value
        if rows:  # one numpy assignment per batch, not per event
            vectors[folded, len(STATIC_NAMES) :] = rows
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
            self._commit_cached(
                [(self.keys.txn_tag(p), c) for p, c in zip(sorted(batch._writes), commits, strict=True)]
            )
        # every partition of the batch, replay-only ones too: their outputs may be in the transaction in flight
        lows: dict[int, int] = {}
        for rec in batch.records:
            lows[rec.partition] = min(lows.get(rec.partition, rec.offset), rec.offset)
        for p, low in lows.items():
            self._kept_from[p] = min(low, self._unsettled_from.get(p, low))

    def keep_outputs_from(self, first_offsets: dict[int, int]) -> None:
        """Per transactions partition, the first offset of the engine's Kafka transaction not yet committed (it
        spans several batches): an abort or a crash replays from there, so cached outputs from there on are kept
        until the engine gives later offsets (or none, once it committed)."""
        self._unsettled_from = dict(first_offsets)
        for p, offset in first_offsets.items():
            self._kept_from[p] = min(offset, self._kept_from.get(p, offset))

    def apply_labels(self, records: Sequence[LabelRecord]) -> int:
        records = list(records)
        keys = self.keys
        parts = sorted({r.partition for r in records})
        for p in parts:
            self._check_partition(p, self.label_partitions, "labels")
        usable = [_usable(r) for r in records]
        fkeys: dict[int, set[str]] = {p: set() for p in parts}
        for r, ok in zip(records, usable, strict=True):
            if ok:
                fkeys[r.partition].add(keys.merchant_fraud(r.partition, _merchant(r)))
        label_offsets = self._offsets({keys.label_tag(p): keys.label_offset(p) for p in parts})
        stored = {p: label_offsets[keys.label_tag(p)] for p in parts}
        states, _ = self._fetch([(keys.label_tag(p), sorted(fkeys[p]), _fraud) for p in parts], {})
        frauds: dict[str, MerchantFraudRecord] = dict(states)  # type: ignore[arg-type]
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
            write.states[key] = frauds[key]
            applied += 1
        commits = [
            (keys.label_tag(p), Commit(keys.label_offset(p), f"{keys.label_tag(p)}:out", w, {}))
            for p, w in sorted(writes.items())
        ]
        if commits:
            self._commit_cached(commits)
        self.counters["labels_applied"] += applied
        return applied

    # cache ----------------------------------------------------------------------------------------------
    def _merchant_keys(self, merchant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A merchant's transaction keys (one per partition) and fraud keys (one per labels partition), memoised."""
        found = self._key_names.get(merchant)
        if found is None:
            if len(self._key_names) >= MAX_KEY_NAMES:
                self._key_names.clear()
            found = self._key_names[merchant] = (
                tuple(self.keys.merchant_tx(p, merchant) for p in range(self.partitions)),
                tuple(self.keys.merchant_fraud(p, merchant) for p in range(self.label_partitions)),
            )
        return found

    def _offsets(self, offset_keys: dict[str, str]) -> dict[str, int | None]:
        """The stored offset of each partition tag (one read); cached records of moved partitions are dropped."""
        values, _ = self._load(list(offset_keys.values()), {})
        found = {tag: _as_offset(v) for tag, v in zip(offset_keys, values, strict=True)}
        for tag, version in found.items():
            self.cache.sync(tag, version)
        return found

    def _fetch(
        self, groups: list[tuple[str, list[str], Decoder]], hash_fields: dict[str, list[int]]
    ) -> tuple[dict[str, object], dict[str, list[bytes | None]]]:
        """Decoded records of every (tag, keys, decoder) group, reading from the backend only cache misses."""
        now = self.monotonic()
        found: dict[str, object] = {}
        misses: list[tuple[str, str, Decoder]] = []
        for tag, group_keys, decode in groups:
            hits, missing = self.cache.lookup(tag, group_keys, now)
            found.update(hits)
            misses += [(tag, key, decode) for key in missing]
        if not misses and not hash_fields:
            return found, {}
        values, fields = self._load([key for _, key, _ in misses], hash_fields)
        present = [key for (_, key, _), value in zip(misses, values, strict=True) if value is not None]
        expiry = dict(zip(present, self._ttls(present), strict=True)) if present else {}
        fresh: dict[str, dict[str, tuple[object, float]]] = {}
        for (tag, key, decode), value in zip(misses, values, strict=True):
            record = decode(value)
            found[key] = record
            until = NEVER if value is None else now + expiry[key] - EXPIRY_MARGIN_S
            fresh.setdefault(tag, {})[key] = (record, until)
        for tag, records in fresh.items():
            self.cache.store(tag, records)
        return found, fields

    def _commit_cached(self, commits: list[tuple[str, Commit]]) -> None:
        """Commit, then move each written partition's cached records to its new offset (all dropped on failure)."""
        started = self.monotonic()
        try:
            self._commit([c for _, c in commits])
        except BaseException:
            self.cache.clear()
            raise
        expires = started + self.ttl_s - EXPIRY_MARGIN_S
        for tag, c in commits:
            w = c.write
            self.cache.committed(tag, w.expected_offset, w.new_offset, w.states, expires)

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


def _user(value: bytes | None) -> UserState:
    return UserState() if value is None else UserState.from_bytes(value)


def _tx(value: bytes | None) -> MerchantTxRecord:
    return MerchantTxRecord() if value is None else MerchantTxRecord.from_bytes(value)


def _fraud(value: bytes | None) -> MerchantFraudRecord:
    return MerchantFraudRecord() if value is None else MerchantFraudRecord.from_bytes(value)


def _usable(rec: LabelRecord) -> bool:
    return rec.label.merchant_id is not None and rec.label.transaction_timestamp is not None


def _merchant(rec: LabelRecord) -> str:
    assert rec.label.merchant_id is not None
    return rec.label.merchant_id
