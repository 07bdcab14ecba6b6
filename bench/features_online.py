"""Online feature throughput and Redis memory per user on the handbook data, through RedisFeatureStore.

    python -m bench.features_online [--shared DIR] [--days 35] [--redis-url URL]

Streams the first --days of the handbook in time slices, partition batch by partition batch (6 partitions
by CRC-32 of the user), applies fraud labels as they become known (7-day delay), then measures MEMORY USAGE
of every user key. Writes bench/results/features_online.json. Uses (and then deletes) a fresh namespace.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
import zlib
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from bench.features_oracle import DEFAULT_SHARED, canonical_from_handbook
from features.config import FeatureConfig
from features.offline import transactions_from_frame
from fraudstream.contracts import Label, LabelSource
from fraudstream.errors import FraudstreamError, InputError
from fraudstream.settings import build_settings
from state.batch import LabelRecord, SourceRecord
from state.redis_store import RedisFeatureStore

RESULTS = Path(__file__).resolve().parent / "results" / "features_online.json"
PARTITIONS = 6


def run(shared: Path, days: float, redis_url: str, slice_events: int, batch_size: int) -> dict[str, Any]:
    files = sorted((shared / "datasets" / "handbook-sim").glob("transactions_*.parquet"))
    if not files:
        raise InputError(f"no handbook transactions under {shared}; pass --shared DIR")
    raw = pd.read_parquet(files[0])
    raw = raw[raw["TX_DATETIME"] < raw["TX_DATETIME"].min() + pd.Timedelta(days=days)]
    frame = canonical_from_handbook(raw)
    cfg = FeatureConfig()
    txns = list(transactions_from_frame(frame))
    frauds = frame[frame["is_fraud"] == 1]
    labels = [
        Label(
            transaction_id=t,
            user_id=u,
            is_fraud=True,
            source=LabelSource.dataset,
            merchant_id=m,
            transaction_timestamp=ts.to_pydatetime(),
            labelled_at=(ts + timedelta(seconds=cfg.label_delay_s)).to_pydatetime(),
        )
        for t, u, m, ts in zip(
            frauds["transaction_id"], frauds["user_id"], frauds["merchant_id"], frauds["timestamp"], strict=True
        )
    ]
    client = redis.Redis.from_url(redis_url)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, namespace, cfg, partitions=PARTITIONS)
    offsets: dict[int, int] = defaultdict(int)
    label_offsets: dict[int, int] = defaultdict(int)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        for start in range(0, len(txns), slice_events):
            chunk = txns[start : start + slice_events]
            horizon = chunk[-1].timestamp
            ready = [lab for lab in labels if lab.labelled_at <= horizon]
            labels = labels[len(ready) :]
            if ready:
                recs = []
                for lab in ready:
                    p = zlib.crc32(lab.user_id.encode()) % PARTITIONS
                    recs.append(LabelRecord(p, label_offsets[p], lab))
                    label_offsets[p] += 1
                store.apply_labels(recs)
            by_partition: dict[int, list[SourceRecord]] = defaultdict(list)
            for txn in chunk:
                p = zlib.crc32(txn.user_id.encode()) % PARTITIONS
                by_partition[p].append(SourceRecord(p, offsets[p], txn))
                offsets[p] += 1
            for records in by_partition.values():
                for i in range(0, len(records), batch_size):
                    batch = records[i : i + batch_size]
                    prepared = store.prepare_batch(batch)
                    store.commit_batch(prepared, [b"x" * 64] * len(batch))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        memory = store.memory_report()
    finally:
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()
    return {
        "events": len(txns),
        "days": days,
        "batch_size": batch_size,
        "wall_seconds": round(wall, 2),
        "events_per_s_wall": round(len(txns) / wall),
        "events_per_s_cpu": round(len(txns) / cpu),
        "late_events": store.counters["late_events"],
        "labels_applied": store.counters["labels_applied"],
        **{k: round(v, 1) for k, v in memory.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--days", type=float, default=35.0, help="days of history to stream (>= 30 for full windows)")
    parser.add_argument(
        "--redis-url", default=None, help="default: the configured Redis (FRAUD_REDIS__URL or embedded)"
    )
    parser.add_argument("--slice-events", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        url = args.redis_url or build_settings().redis_url
        report = run(args.shared, args.days, url, args.slice_events, args.batch_size)
    except (FraudstreamError, redis.RedisError) as exc:
        print(f"features_online: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
