"""The store logic shared by the in-memory and Redis stores: key layout, batch fold, offset guard.

A backend only loads values (one round trip) and commits per-partition writes atomically with a
compare-and-set on the partition's offset; everything else happens here, so both behave alike.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import numpy.typing as npt

from features.config import FeatureConfig
from features.fields import TxnColumns, columns_of, event_second, fields_of, id_hash
from features.merchant import apply_fraud_label
from features.merchant_fold import fold_merchant_batch, fold_merchant_flat
from features.spec import FEATURE_NAMES, STATIC_NAMES, USER_NAMES
from features.state import MerchantFraudRecord, UserState
from features.static import static_columns
from features.user_fold import fold_user_batch, user_events
from fraudstream.contracts import Transaction
from fraudstream.errors import InputError
from state.batch import LabelRecord, PartitionWrite, PreparedBatch, SourceRecord, SourceRows
from state.cache import EXPIRY_MARGIN_S, NEVER, StateCache
from state.keys import Keys, ttl_seconds

MAX_KEY_NAMES = 200_000


def transaction_hash(transaction_id: str) -> str:
    """A transaction id as the seen-key names it: 96 bits of BLAKE2b (no raw id in Redis; collisions negligible)."""
    return hashlib.blake2b(transaction_id.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Commit:
    """One partition's atomic write, in backend terms."""

    offset_key: str
    outputs_key: str
    write: PartitionWrite
    outputs: dict[int, bytes]


@dataclass(frozen=True)
class _ReadPlan:
    """What one batch reads, planned on its partitions' stored offsets (see KeyValueFeatureStore._plan)."""

    stored_offset: dict[int, int | None]
    replayed: npt.NDArray[np.bool_]
    replay_at: list[int]
    fresh_at: list[int]
    seen_keys: list[str]
    groups: list[tuple[str, list[str]]]
    replays: dict[str, list[int]]


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
            "duplicate_events": 0,
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

    def _load_with_ttls(
        self, keys: list[str], ttl_keys: list[str], hash_fields: dict[str, list[int]]
    ) -> tuple[list[bytes | None], list[float], dict[str, list[bytes | None]]]:
        """_load and _ttls of `ttl_keys` together (a backend that can overrides this with one round trip)."""
        values, fields = self._load(keys, hash_fields)
        return values, self._ttls(ttl_keys) if ttl_keys else [], fields

    @abstractmethod
    def _sizes(self, pattern: str, limit: int) -> list[int]:
        """Bytes used by up to `limit` keys matching `pattern`."""

    # FeatureStore ---------------------------------------------------------------------------------------
    def _check_partition(self, partition: int, limit: int, what: str) -> None:
        if not 0 <= partition < limit:
            raise InputError(f"{what} partition {partition} is outside 0..{limit - 1}; set topics.partitions to match")

    def prepare_batch(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        return self.prepare_rows(SourceRows.of(list(records)))

    def prepare_rows(self, rows: SourceRows) -> PreparedBatch:
        """prepare_batch over columns: one round trip, both folds once, no per-event object.

        The round trip reads the partitions' stored offsets together with the records, assuming they are still
        those the cache was synced at (this writer's own last commits); only when another writer moved one since
        does a second read follow, planned on the offsets found."""
        keys = self.keys
        parts = sorted(set(rows.partition.tolist()))
        for p in parts:
            self._check_partition(p, self.partitions, "transactions")
        offset_keys = {keys.txn_tag(p): keys.txn_offset(p) for p in range(self.partitions)} | {
            keys.label_tag(p): keys.label_offset(p) for p in range(self.label_partitions)
        }
        predicted = self.cache.versions(offset_keys)
        if predicted is not None:
            plan = self._plan(rows, {p: predicted[keys.txn_tag(p)] for p in parts})
            states, cached, offsets = self._fetch(plan.groups, plan.replays, plan.seen_keys, offset_keys)
            if offsets == predicted:
                return self._prepared(rows, plan, states, cached)
        offsets = self._offsets(offset_keys)
        plan = self._plan(rows, {p: offsets[keys.txn_tag(p)] for p in parts})
        states, cached, _ = self._fetch(plan.groups, plan.replays, plan.seen_keys)
        return self._prepared(rows, plan, states, cached)

    def _plan(self, rows: SourceRows, stored_offset: dict[int, int | None]) -> _ReadPlan:
        """What a batch reads, given its partitions' stored offsets: replays (at or below them) and fresh rows."""
        keys = self.keys
        partition, offset = rows.partition.tolist(), rows.offset.tolist()
        n = len(rows)
        last = np.full(self.partitions, -1, dtype=np.int64)
        for p, stored in stored_offset.items():
            if stored is not None:
                last[p] = stored
        replayed = rows.offset <= last[rows.partition] if n else np.zeros(0, dtype=bool)
        replays: dict[str, list[int]] = {}
        replay_at = np.flatnonzero(replayed).tolist()
        for i in replay_at:
            replays.setdefault(keys.outputs(partition[i]), []).append(offset[i])
        fresh_at = np.flatnonzero(~replayed).tolist()
        seen_keys = [keys.seen(partition[i], transaction_hash(rows.transaction_id[i])) for i in fresh_at]
        user_key = self._user_key
        wanted_users = {keys.user(partition[i], user_key(rows.user_id[i])): partition[i] for i in fresh_at}
        merchants = sorted({rows.merchant_id[i] for i in fresh_at})
        names = [self._merchant_keys(m) for m in merchants]
        parts = sorted(stored_offset)
        own: dict[int, list[str]] = {p: [] for p in parts}
        for k in sorted(wanted_users):
            own[wanted_users[k]].append(k)
        groups: list[tuple[str, list[str]]] = [(keys.txn_tag(p), own[p]) for p in parts]
        groups += [(keys.txn_tag(p), [tx[p] for tx, _ in names]) for p in range(self.partitions)]
        groups += [(keys.label_tag(p), [fr[p] for _, fr in names]) for p in range(self.label_partitions)]
        return _ReadPlan(stored_offset, replayed, replay_at, fresh_at, seen_keys, groups, replays)

    def _prepared(
        self, rows: SourceRows, plan: _ReadPlan, states: dict[str, bytes], cached: dict[str, list[bytes | None]]
    ) -> PreparedBatch:
        """The folds over a batch's fresh rows with the states read, the replays' cached outputs, the writes."""
        keys = self.keys
        partition, offset = rows.partition.tolist(), rows.offset.tolist()
        n = len(rows)
        replayed, replay_at, fresh_at, seen_keys = plan.replayed, plan.replay_at, plan.fresh_at, plan.seen_keys
        stored_offset = plan.stored_offset
        vectors = np.full((n, len(FEATURE_NAMES)), np.nan)
        late = np.zeros(n, dtype=bool)
        outputs: list[bytes | None] = [None] * n
        replayed_outputs = {key: iter(values) for key, values in cached.items()}
        for i in replay_at:
            outputs[i] = next(replayed_outputs[keys.outputs(partition[i])])
        writes = self._writes(partition, offset, fresh_at, stored_offset)
        duplicate_of: list[str | None] = [None] * n
        first: dict[str, bytes] = {}
        for i, k in zip(fresh_at, seen_keys, strict=True):
            where = states[k] or first.get(k)
            if where:
                duplicate_of[i] = where.decode()
            else:
                first[k] = writes[partition[i]].values[k] = f"{partition[i]}@{offset[i]}".encode()
        fold_at = [i for i in fresh_at if duplicate_of[i] is None]
        if fold_at:
            self._fold(rows, np.asarray(fold_at, dtype=np.intp), states, vectors, late, writes)
        self.counters["late_events"] += int(late.sum())
        self.counters["replayed_events"] += len(replay_at)
        self.counters["duplicate_events"] += len(fresh_at) - len(fold_at)
        return PreparedBatch(rows, vectors, late, replayed, outputs, duplicate_of=duplicate_of, _writes=writes)

    def _fold(
        self,
        rows: SourceRows,
        fold: npt.NDArray[np.intp],
        states: dict[str, bytes],
        vectors: npt.NDArray[np.float64],
        late: npt.NDArray[np.bool_],
        writes: dict[int, PartitionWrite],
    ) -> None:
        """Both folds over the rows `fold` (fresh, not duplicates) with the fetched states; fills their vectors and
        late flags, and puts the changed records into the partitions' writes."""
        keys, cfg, user_key = self.keys, self.cfg, self._user_key
        at = fold.tolist()
        partition = rows.partition[fold]
        parts = partition.tolist()
        user_keys = [keys.user(p, user_key(rows.user_id[i])) for p, i in zip(parts, at, strict=True)]
        partition_of = dict(zip(user_keys, parts, strict=True))
        batch_users = sorted(partition_of)
        fold_merchants = [rows.merchant_id[i] for i in at]
        merchants = sorted(set(fold_merchants))
        names = [self._merchant_keys(m) for m in merchants]
        cols = rows.columns if len(at) == len(rows) else rows.columns.take(fold)
        user_index = {k: u for u, k in enumerate(batch_users)}
        event_users = np.fromiter(map(user_index.__getitem__, user_keys), np.int64, len(user_keys))
        users = fold_user_batch([states[k] for k in batch_users], user_events(cols, event_users), cfg)
        merchant_index = {m: j for j, m in enumerate(merchants)}
        shops = fold_merchant_flat(
            list(map(states.__getitem__, chain.from_iterable(tx for tx, _ in names))),
            list(map(states.__getitem__, chain.from_iterable(fr for _, fr in names))),
            self.partitions,
            self.label_partitions,
            np.fromiter(map(merchant_index.__getitem__, fold_merchants), np.int64, len(at)),
            partition,
            cols.ts,
            users.late,
            cfg,
        )
        vectors[fold] = feature_rows(cols, users.features, shops.features, cfg)
        late[fold] = users.late
        folded = {k for k, was_late in zip(user_keys, users.late.tolist(), strict=True) if not was_late}
        changed = [(k, partition_of[k], users.states[user_index[k]]) for k in folded]
        changed += [(names[j][0][p], p, value) for (j, p), value in shops.records.items()]
        for key, p, value in sorted(changed):
            writes[p].values[key] = value
            writes[p].states[key] = value

    def peek(self, txns: Sequence[Transaction]) -> PeekedFeatures:
        """Each transaction's features against the state stored now, extract before update, each one alone.

        Read-only: one pipelined read of the backend (never the process cache), nothing written, nothing cached, no
        offset read or moved; the new state the folds compute is not even encoded. The user's record is looked up
        on every transactions partition (the partition is the producer's choice) and the one with the latest event
        is used; the merchant's view merges every partition's records, as prepare_batch's does.
        """
        txns = list(txns)
        n, keys = len(txns), self.keys
        user_keys = [[keys.user(p, self._user_key(t.user_id)) for p in range(self.partitions)] for t in txns]
        names = [self._merchant_keys(t.merchant_id) for t in txns]
        wanted = [k for group in user_keys for k in group]
        wanted += [k for tx, fr in names for k in (*tx, *fr)]
        values, _ = self._load(wanted, {})
        found = dict(zip(wanted, values, strict=True))
        states, partitions = zip(*(_latest_user(group, found) for group in user_keys), strict=True) if n else ((), ())
        cols = one_row_columns(txns[0]) if n == 1 else columns_of(txns)
        cfg = self.cfg
        own = np.arange(n, dtype=np.int64)  # each event its own user and merchant: none reads another's update
        users = fold_user_batch(list(states), user_events(cols, own), cfg, encode=False)
        shops = fold_merchant_batch(
            [[found[k] or b"" for k in tx] for tx, _ in names],
            [[found[k] or b"" for k in fr] for _, fr in names],
            own,
            np.asarray(partitions, dtype=np.int64),
            cols.ts,
            users.late,
            cfg,
        )
        return PeekedFeatures(feature_rows(cols, users.features, shops.features, cfg), users.late)

    def _writes(
        self, partition: list[int], offset: list[int], fresh: list[int], stored_offset: dict[int, int | None]
    ) -> dict[int, PartitionWrite]:
        """One PartitionWrite per partition with fresh records: the offsets it applies and the outputs it keeps."""
        writes: dict[int, PartitionWrite] = {}
        lows = _lowest_offsets(partition, offset)
        for i in fresh:
            p, o = partition[i], offset[i]
            write = writes.get(p)
            if write is None:
                # the previous batch's outputs stay too: its Kafka transaction may still be in flight (and abort)
                low = min(lows[p], self._kept_from.get(p, lows[p]))
                write = writes[p] = PartitionWrite(stored_offset[p], o, low)
            write.new_offset = max(write.new_offset, o)
            write.offsets.append(o)
        return writes

    def commit_batch(self, batch: PreparedBatch, outputs: Sequence[bytes | None]) -> None:
        rows = batch.rows
        if len(outputs) != len(rows):
            raise InputError(f"commit_batch got {len(outputs)} outputs for {len(rows)} records; give one each")
        partition, offset = rows.partition.tolist(), rows.offset.tolist()
        by_offset: dict[int, dict[int, bytes]] = {p: {} for p in batch._writes}
        for p, o, out, was_replayed in zip(partition, offset, outputs, batch.replayed.tolist(), strict=True):
            if out is not None and not was_replayed:
                by_offset[p][o] = bytes(out)
        commits = [
            Commit(self.keys.txn_offset(p), self.keys.outputs(p), w, by_offset[p])
            for p, w in sorted(batch._writes.items())
        ]
        if commits:
            self._commit_cached(
                [(self.keys.txn_tag(p), c) for p, c in zip(sorted(batch._writes), commits, strict=True)]
            )
        # every partition of the batch, replay-only ones too: their outputs may be in the transaction in flight
        for p, low in _lowest_offsets(partition, offset).items():
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
        states, _, _ = self._fetch([(keys.label_tag(p), sorted(fkeys[p])) for p in parts], {})
        frauds = {key: _fraud(value) for key, value in states.items()}
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
            write.values[key] = write.states[key] = frauds[key].to_bytes()
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
        self,
        groups: list[tuple[str, list[str]]],
        hash_fields: dict[str, list[int]],
        uncached: Sequence[str] = (),
        offset_keys: dict[str, str] | None = None,
    ) -> tuple[dict[str, bytes], dict[str, list[bytes | None]], dict[str, int | None] | None]:
        """The stored bytes (b'' when absent) of every (tag, keys) group, reading the backend only for cache misses,
        and of the `uncached` keys (read every time, never cached: the seen-transaction keys), with the misses'
        TTLs, in one round trip.

        With `offset_keys` (tag -> offset key) the same round trip reads the stored offsets too and returns them;
        records are cached only for the tags whose offset is still the cache's (the caller retries the others).
        Records stay bytes: the compiled folds decode and encode them, so nothing is decoded per key in Python.
        """
        now = self.monotonic()
        found: dict[str, bytes] = {}
        misses: list[tuple[str, str]] = []
        for tag, group_keys in groups:
            hits, missing = self.cache.lookup(tag, group_keys, now)
            found.update(hits)  # type: ignore[arg-type]
            misses += [(tag, key) for key in missing]
        offset_names = list(offset_keys.values()) if offset_keys is not None else []
        if not misses and not hash_fields and not uncached and not offset_names:
            return found, {}, None
        miss_names = [key for _, key in misses]
        values, ttls, fields = self._load_with_ttls(offset_names + miss_names + list(uncached), miss_names, hash_fields)
        offsets = None
        if offset_keys is not None:
            offsets = {tag: _as_offset(v) for tag, v in zip(offset_keys, values, strict=False)}
            values = values[len(offset_names) :]
            moved = {tag for tag, version in offsets.items() if self.cache.versions([tag]) != {tag: version}}
            if moved:  # another writer: nothing read now is cached; the caller plans again on the offsets found
                return found, fields, offsets
        found.update((key, value or b"") for key, value in zip(uncached, values[len(misses) :], strict=True))
        fresh: dict[str, dict[str, tuple[object, float]]] = {}
        for (tag, key), value, ttl in zip(misses, values[: len(misses)], ttls, strict=True):
            found[key] = b"" if value is None else value
            until = NEVER if value is None else now + ttl - EXPIRY_MARGIN_S
            fresh.setdefault(tag, {})[key] = (found[key], until)
        for tag, records in fresh.items():
            self.cache.store(tag, records)
        return found, fields, offsets

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


@dataclass(frozen=True)
class PeekedFeatures:
    """What `peek` found: one FEATURE_NAMES row per transaction, and whether the stream would call it late."""

    vectors: npt.NDArray[np.float64]
    late: npt.NDArray[np.bool_]


def feature_rows(
    cols: TxnColumns, user_features: npt.NDArray[np.float64], merchant_features: npt.NDArray[np.float64],
    cfg: FeatureConfig,
) -> npt.NDArray[np.float64]:  # fmt: skip
    """The FEATURE_NAMES layout: static columns, then the user fold's, then the merchant fold's."""
    s, u = len(STATIC_NAMES), len(USER_NAMES)
    out = np.empty((len(cols), len(FEATURE_NAMES)), dtype=np.float64)
    out[:, :s] = static_columns(cols, cfg)
    out[:, s : s + u] = user_features
    out[:, s + u :] = merchant_features
    return out


def one_row_columns(txn: Transaction) -> TxnColumns:
    """`columns_of([txn])` for one transaction, from its `fields_of` (equal row for row, features/fields.py): a
    scoring request is a batch of one, and columns_of's per-column NumPy conversions (nan_to_num, where, rint) cost
    several times the scalar reduction for one row."""
    f = fields_of(txn)
    located = f.lat_e6 is not None and f.lon_e6 is not None
    i64 = np.int64
    return TxnColumns(
        ts=np.array([f.ts], dtype=i64), cents=np.array([f.cents], dtype=i64),
        amount=np.array([f.amount], dtype=np.float64), merchant_h=np.array([f.merchant_h], dtype=i64),
        category_h=np.array([f.category_h], dtype=i64), device_h=np.array([f.device_h], dtype=i64),
        lat_e6=np.array([f.lat_e6 if located else 0], dtype=i64),
        lon_e6=np.array([f.lon_e6 if located else 0], dtype=i64),
        located=np.array([located], dtype=np.bool_), channel=np.array([f.channel], dtype=i64),
        country_missing=np.array([f.country_missing], dtype=np.bool_),
    )  # fmt: skip


def _latest_user(candidates: list[str], found: dict[str, bytes | None]) -> tuple[bytes, int]:
    """The user's record (b'' when new) and its partition: the only one stored, or the one with the latest event."""
    stored = [(p, v) for p, k in enumerate(candidates) if (v := found[k]) is not None]
    if not stored:
        return b"", 0
    if len(stored) > 1:
        stored.sort(key=lambda pv: UserState.from_bytes(pv[1]).last_ts)
    partition, value = stored[-1]
    return value, partition


def _b(value: bytes | None) -> bytes:
    assert value is not None
    return value


def _as_offset(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def _fraud(value: bytes) -> MerchantFraudRecord:
    return MerchantFraudRecord.from_bytes(value) if value else MerchantFraudRecord()


def _usable(rec: LabelRecord) -> bool:
    return rec.label.merchant_id is not None and rec.label.transaction_timestamp is not None


def _merchant(rec: LabelRecord) -> str:
    assert rec.label.merchant_id is not None
    return rec.label.merchant_id


def _lowest_offsets(partition: list[int], offset: list[int]) -> dict[int, int]:
    """Each partition's lowest offset among the records."""
    lows: dict[int, int] = {}
    for p, o in zip(partition, offset, strict=True):
        if o < lows.get(p, o + 1):
            lows[p] = o
    return lows
