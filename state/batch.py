"""Records in and the prepared batch out: the values passed between the streamer and the store."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fraudstream.contracts import Label, Transaction


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    txn: Transaction


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
    """

    records: list[SourceRecord]
    vectors: npt.NDArray[np.float64]
    late: npt.NDArray[np.bool_]
    replayed: npt.NDArray[np.bool_]
    cached_outputs: list[bytes | None]
    _writes: dict[int, PartitionWrite] = field(default_factory=dict, repr=False)
