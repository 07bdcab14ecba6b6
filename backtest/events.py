"""The replayed stream: transactions and their delayed labels merged by event time, as engine-neutral records.

A fraud label (source=dataset, with merchant_id and transaction_timestamp) enters at tx time + label delay; on equal
times labels come first. Each event gets its Kafka partition (crc32 of the user id, for both topics) and its offset
(a counter per topic partition), so the fast driver and the Kafka producer place every event identically.
Only fraud verdicts are replayed: a legitimate verdict changes no feature.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fraudstream.settings import TopicSettings
from streamer.core import RawRecord
from streamer.outputs import contract_headers

LABEL, TRANSACTION = 0, 1
OPTIONAL_TEXT = ("merchant_category", "channel", "country", "device_id")
_TX_HEADERS: list[tuple[str, bytes | None]] = list(contract_headers("transaction"))
_LABEL_HEADERS: list[tuple[str, bytes | None]] = list(contract_headers("label"))


def _iso(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """ISO-8601 UTC text with a Z; microseconds only when some time has them."""
    unit: Literal["s", "us"] = "s" if not np.any(ns % 1_000_000_000) else "us"
    stamps: npt.NDArray[np.datetime64] = ns.astype("datetime64[ns]")
    return np.char.add(np.datetime_as_string(stamps, unit=unit), "Z")


def _partitions(user_ids: npt.NDArray[np.object_], partitions: int) -> npt.NDArray[np.int32]:
    codes, uniques = pd.factorize(pd.Series(user_ids))
    table = np.fromiter((zlib.crc32(str(u).encode()) % partitions for u in uniques), np.int32, len(uniques))
    return np.asarray(table[codes], dtype=np.int32)


class EventStream:
    """The merged, time-ordered events of one history; `records(lo, hi)` builds RawRecords for events lo..hi-1."""

    def __init__(self, frame: pd.DataFrame, label_delay: pd.Timedelta, topics: TopicSettings) -> None:
        self.topics = topics
        n = len(frame)
        self.tx_ns = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self.tid = frame["transaction_id"].to_numpy(dtype=object)
        self.uid = frame["user_id"].to_numpy(dtype=object)
        self.mid = frame["merchant_id"].to_numpy(dtype=object)
        self.amount = frame["amount"].to_numpy(dtype=np.float64)
        self.currency = frame["currency"].to_numpy(dtype=object) if "currency" in frame else np.full(n, "EUR", object)
        self.optional = {
            c: frame[c].to_numpy(dtype=object) for c in OPTIONAL_TEXT if c in frame and frame[c].notna().any()
        }
        self.coords = (
            (frame["latitude"].to_numpy(dtype=np.float64), frame["longitude"].to_numpy(dtype=np.float64))
            if "latitude" in frame and "longitude" in frame
            else None
        )
        fraud_rows = np.flatnonzero(frame["is_fraud"].to_numpy() == 1)
        delay_ns = int(label_delay / pd.Timedelta(nanoseconds=1))
        rows = np.concatenate([np.arange(n), fraud_rows])
        kinds = np.concatenate([np.full(n, TRANSACTION, np.int8), np.full(len(fraud_rows), LABEL, np.int8)])
        times = np.concatenate([self.tx_ns, self.tx_ns[fraud_rows] + delay_ns])
        order = np.lexsort((rows, kinds, times))  # time, then labels first, then input order
        self.rows, self.kinds, self.times = rows[order], kinds[order], times[order]
        self.partitions = _partitions(self.uid, topics.partitions)[self.rows]
        group = self.kinds.astype(np.int64) * topics.partitions + self.partitions
        self.offsets = pd.Series(group).groupby(group).cumcount().to_numpy(dtype=np.int64)
        self.label_delay_ns = delay_ns

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_labels(self) -> int:
        return int(np.sum(self.kinds == LABEL))

    def index_at(self, when: pd.Timestamp) -> int:
        """Position of the first event at or after `when` (labels at `when` included)."""
        return int(np.searchsorted(self.times, when.value, side="left"))

    def records(self, lo: int, hi: int) -> list[RawRecord]:
        rows, kinds = self.rows[lo:hi], self.kinds[lo:hi]
        tx_text = _iso(self.tx_ns[rows])
        label_text = _iso(self.tx_ns[rows] + self.label_delay_ns)
        out = []
        for j, (row, kind) in enumerate(zip(rows.tolist(), kinds.tolist(), strict=True)):
            key = str(self.uid[row]).encode()
            if kind == TRANSACTION:
                value, topic, headers = self._transaction(row, str(tx_text[j])), self.topics.transactions, _TX_HEADERS
                ts_ms = int(self.tx_ns[row] // 1_000_000)
            else:
                value, topic, headers = (
                    self._label(row, str(tx_text[j]), str(label_text[j])),
                    self.topics.labels,
                    _LABEL_HEADERS,
                )
                ts_ms = int((self.tx_ns[row] + self.label_delay_ns) // 1_000_000)
            out.append(
                RawRecord(topic, int(self.partitions[lo + j]), int(self.offsets[lo + j]), key, value, headers, ts_ms)
            )
        return out

    def _transaction(self, row: int, when: str) -> bytes:
        parts = [
            f'"transaction_id":{json.dumps(str(self.tid[row]))}',
            f'"user_id":{json.dumps(str(self.uid[row]))}',
            f'"timestamp":"{when}"',
            f'"amount":{float(self.amount[row])!r}',
            f'"currency":{json.dumps(str(self.currency[row]))}',
            f'"merchant_id":{json.dumps(str(self.mid[row]))}',
        ]
        for name, values in self.optional.items():
            value = values[row]
            if value is not None and value == value:
                parts.append(f'"{name}":{json.dumps(str(value))}')
        if self.coords is not None:
            lat, lon = float(self.coords[0][row]), float(self.coords[1][row])
            if lat == lat and lon == lon:
                parts.append(f'"latitude":{lat!r},"longitude":{lon!r}')
        return ("{" + ",".join(parts) + "}").encode()

    def _label(self, row: int, tx_when: str, labelled: str) -> bytes:
        return (
            f'{{"transaction_id":{json.dumps(str(self.tid[row]))},"user_id":{json.dumps(str(self.uid[row]))},'
            f'"is_fraud":true,"source":"dataset","labelled_at":"{labelled}",'
            f'"merchant_id":{json.dumps(str(self.mid[row]))},"transaction_timestamp":"{tx_when}"}}'
        ).encode()


def time_range(records: Sequence[RawRecord]) -> tuple[int, int]:
    """Smallest and largest record timestamps (ms) of a batch."""
    stamps = [r.timestamp_ms or 0 for r in records]
    return min(stamps), max(stamps)
