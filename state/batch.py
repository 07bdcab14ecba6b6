"""Records in and the prepared batch out: the values passed between the streamer and the store."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from features.fields import TxnColumns, columns_of
from fraudstream.contracts import Label, Transaction


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    txn: Transaction


@dataclass(frozen=True)
class SourceRows:
    """A batch of validated transactions as columns: where each came from, its ids, and what the folds read."""

    partition: npt.NDArray[np.int64]
    offset: npt.NDArray[np.int64]
    user_id: list[str]
    merchant_id: list[str]
    columns: TxnColumns
    transaction_id: list[str]

    def __len__(self) -> int:
        return len(self.user_id)

    @classmethod
    def of(cls, records: list[SourceRecord]) -> SourceRows:
        return cls(
            np.fromiter((r.partition for r in records), np.int64, len(records)),
            np.fromiter((r.offset for r in records), np.int64, len(records)),
            [r.txn.user_id for r in records],
            [r.txn.merchant_id for r in records],
            columns_of([r.txn for r in records]),
            [r.txn.transaction_id for r in records],
        )


@dataclass(frozen=True)
class LabelRecord:
    partition: int
    offset: int
    label: Label


@dataclass
class PartitionWrite:
    """Everything one partition's atomic write needs (compare-and-set on `expected_offset`)."""

    expected_offset: int | None  # as read in prepare; None: no offset stored yet
    new_offset: int
    prune_below: int  # cached outputs at lower offsets are dropped by this commit
    values: dict[str, bytes] = field(default_factory=dict)
    offsets: list[int] = field(default_factory=list)  # non-replayed offsets, in record order
    states: dict[str, object] = field(default_factory=dict)  # the decoded records behind `values`, for the cache


@dataclass
class PreparedBatch:
    """The result of prepare_batch: vectors and flags per record, and the writes commit_batch performs.

    Replayed records (offset <= the partition's last applied offset) are not folded again; their vector
    row is NaN and `cached_outputs` holds what was stored when they were first applied (None if nothing).
    A duplicate (a transaction id already applied on its partition, in an earlier batch or earlier in this one) is
    not folded either: `duplicate_of` says where the id was first applied (`<partition>@<offset>`), else None.
    """

    rows: SourceRows
    vectors: npt.NDArray[np.float64]
    late: npt.NDArray[np.bool_]
    replayed: npt.NDArray[np.bool_]
    cached_outputs: list[bytes | None]
    duplicate_of: list[str | None] = field(default_factory=list)
    _writes: dict[int, PartitionWrite] = field(default_factory=dict, repr=False)
