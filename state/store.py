"""The feature store contract (a Protocol) and its two implementations, in memory and in Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from features.state import UserState
from state.batch import LabelRecord, PreparedBatch, SourceRecord, SourceRows


class FeatureStore(Protocol):
    def prepare_batch(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        """One round trip to load state; fold in record order (extract before update). Writes nothing."""
        ...

    def prepare_rows(self, rows: SourceRows) -> PreparedBatch:
        """prepare_batch over a batch given as columns (the streamer's hot path)."""
        ...

    def commit_batch(self, batch: PreparedBatch, outputs: Sequence[bytes | None]) -> None:
        """One atomic write per partition, compare-and-set on the offsets read in prepare."""
        ...

    def keep_outputs_from(self, first_offsets: dict[int, int]) -> None:
        """Keep cached outputs from these offsets on (per transactions partition): where a Kafka transaction that
        spans several batches began, so an abort or a crash replays all of them from the cache."""
        ...

    def apply_labels(self, records: Sequence[LabelRecord]) -> int:
        """Fold fraud labels into merchant risk; idempotent per labels-partition offset. Returns labels used."""
        ...

    def user_state(self, user_id: str) -> UserState | None: ...

    def memory_report(self) -> dict[str, float]: ...


from state.memory import InMemoryFeatureStore  # noqa: E402
from state.redis_store import RedisFeatureStore  # noqa: E402

__all__ = [
    "FeatureStore",
    "InMemoryFeatureStore",
    "LabelRecord",
    "PreparedBatch",
    "RedisFeatureStore",
    "SourceRecord",
    "SourceRows",
]
