"""Drive a FeatureStore the way the streamer does: partition batches, round robin, labels as they become known."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta

import numpy as np
import pandas as pd

from features.offline import transactions_from_frame
from state.batch import LabelRecord, SourceRecord
from state.store import FeatureStore
from tests.feature_streams import labels_from_frame, partition_of


def stream_through_store(
    store: FeatureStore,
    frame: pd.DataFrame,
    labels: pd.DataFrame | None,
    batch_size: int,
    partitions: int = 6,
    slice_width: timedelta = timedelta(hours=12),
) -> tuple[dict[str, np.ndarray], float]:
    """Feed `frame` (sorted) through the store in partition batches; returns vectors by transaction_id and events/s.

    Rounds advance every partition by `slice_width` of event time (so partitions lag each other by less than
    the label delay), and labels known by the end of a round are applied before it.
    """
    queues: dict[int, list[SourceRecord]] = defaultdict(list)
    for txn in transactions_from_frame(frame):
        p = partition_of(txn.user_id, partitions)
        queues[p].append(SourceRecord(p, len(queues[p]), txn))
    pending = labels_from_frame(labels) if labels is not None else []
    label_offsets: dict[int, int] = defaultdict(int)
    vectors: dict[str, np.ndarray] = {}
    position = dict.fromkeys(queues, 0)
    started = time.perf_counter()
    horizon = min(q[0].txn.timestamp for q in queues.values())
    while any(position[p] < len(queues[p]) for p in queues):
        horizon += slice_width  # partitions advance together in event time, as consumers keep up alike
        ready = [lab for lab in pending if lab.labelled_at <= horizon]
        pending = [lab for lab in pending if lab.labelled_at > horizon]
        label_records = []
        for lab in ready:
            lp = partition_of(lab.user_id, partitions)
            label_records.append(LabelRecord(lp, label_offsets[lp], lab))
            label_offsets[lp] += 1
        if label_records:
            store.apply_labels(label_records)
        for p in sorted(queues):
            queue = queues[p]
            end = position[p]
            while end < len(queue) and queue[end].txn.timestamp <= horizon:
                end += 1
            for start in range(position[p], end, batch_size):
                batch = queue[start : min(start + batch_size, end)]
                prepared = store.prepare_batch(batch)
                assert not prepared.late.any() and not prepared.replayed.any()
                for rec, row in zip(batch, prepared.vectors, strict=True):
                    vectors[rec.txn.transaction_id] = row
                store.commit_batch(prepared, [rec.txn.transaction_id.encode() for rec in batch])
            position[p] = end
    return vectors, len(frame) / (time.perf_counter() - started)


def max_relative_gap(offline: pd.DataFrame, online: dict[str, np.ndarray], names: list[str]) -> float:
    expected = offline[names].to_numpy()
    got = np.stack([online[tid] for tid in offline["transaction_id"]])
    return float(np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected))))
