"""The replayed stream: transactions and their delayed labels merged by event time, as engine-neutral records.

A fraud label (source=dataset, with merchant_id and transaction_timestamp) enters at tx time + label delay; on equal
times labels come first. Each event gets its Kafka partition (crc32 of the user id, for both topics) and its offset
(a counter per topic partition), so the fast driver and the Kafka producer place every event identically.
Only fraud verdicts are replayed: a legitimate verdict changes no feature.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from fraudstream.settings import TopicSettings
from streamer.core import RawRecord
from streamer.outputs import contract_headers

LABEL, TRANSACTION = 0, 1
OPTIONAL_TEXT = ("merchant_category", "channel", "country", "device_id")
_TX_HEADERS: list[tuple[str, bytes | None]] = list(contract_headers("transaction"))
_LABEL_HEADERS: list[tuple[str, bytes | None]] = list(contract_headers("label"))
_TX_VALUE = b'{"transaction_id":%b,"user_id":%b,"timestamp":"%b","amount":%r,"currency":%b,"merchant_id":%b%b}'
_LABEL_VALUE = (
    b'{"transaction_id":%b,"user_id":%b,"is_fraud":true,"source":"dataset","labelled_at":"%b","merchant_id":%b,'
    b'"transaction_timestamp":"%b"}'
)


def _iso(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """ISO-8601 UTC text with a Z; microseconds only when some time has them."""
    unit: Literal["s", "us"] = "s" if not np.any(ns % 1_000_000_000) else "us"
    stamps: npt.NDArray[np.datetime64] = ns.astype("datetime64[ns]")
    return np.char.add(np.datetime_as_string(stamps, unit=unit), "Z")


def _json_strings(values: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.intp], list[bytes]]:
    """Each value's code and the JSON text of every distinct value (encoded once, not once per event)."""
    codes, uniques = pd.factorize(pd.Series(values).astype(str))
    return np.asarray(codes, dtype=np.intp), [orjson.dumps(u) for u in uniques]


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
        self._uid_code, self._uid_json = _json_strings(self.uid)
        self._key_text = [orjson.loads(u).encode() for u in self._uid_json]
        self._mid_code, self._mid_json = _json_strings(self.mid)
        self._currency_code, self._currency_json = _json_strings(self.currency)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_labels(self) -> int:
        return int(np.sum(self.kinds == LABEL))

    def index_at(self, when: pd.Timestamp) -> int:
        """Position of the first event at or after `when` (labels at `when` included)."""
        return int(np.searchsorted(self.times, when.value, side="left"))

    def records(self, lo: int, hi: int) -> list[RawRecord]:
        """RawRecords of events lo..hi-1, the values built per batch from text encoded once per distinct value."""
        rows, kinds = self.rows[lo:hi], self.kinds[lo:hi]
        tx_ns = self.tx_ns[rows]
        tx_text = np.char.encode(_iso(tx_ns), "ascii").tolist()
        label_text = np.char.encode(_iso(tx_ns + self.label_delay_ns), "ascii").tolist()
        ts_ms = (tx_ns // 1_000_000).tolist()
        label_ms = ((tx_ns + self.label_delay_ns) // 1_000_000).tolist()
        keys = [self._key_text[c] for c in self._uid_code[rows].tolist()]
        users = [self._uid_json[c] for c in self._uid_code[rows].tolist()]
        merchants = [self._mid_json[c] for c in self._mid_code[rows].tolist()]
        ids = [orjson.dumps(t) for t in self.tid[rows].astype(str).tolist()]
        amounts = self.amount[rows].tolist()
        currencies = [self._currency_json[c] for c in self._currency_code[rows].tolist()]
        parts, offsets = self.partitions[lo:hi].tolist(), self.offsets[lo:hi].tolist()
        tx_topic, label_topic = self.topics.transactions, self.topics.labels
        out = []
        tail = self._tail
        for j, (row, kind) in enumerate(zip(rows.tolist(), kinds.tolist(), strict=True)):
            if kind == TRANSACTION:
                value = _TX_VALUE % (ids[j], users[j], tx_text[j], amounts[j], currencies[j], merchants[j], tail(row))
                out.append(RawRecord(tx_topic, parts[j], offsets[j], keys[j], value, _TX_HEADERS, ts_ms[j]))
            else:
                value = _LABEL_VALUE % (ids[j], users[j], label_text[j], merchants[j], tx_text[j])
                out.append(RawRecord(label_topic, parts[j], offsets[j], keys[j], value, _LABEL_HEADERS, label_ms[j]))
        return out

    def _tail(self, row: int) -> bytes:
        """The optional fields of a transaction, each with its leading comma (b'' when it has none)."""
        if not self.optional and self.coords is None:
            return b""
        parts = []
        for name, values in self.optional.items():
            value = values[row]
            if value is not None and value == value:
                parts.append(b',"%b":%b' % (name.encode(), orjson.dumps(str(value))))
        if self.coords is not None:
            lat, lon = float(self.coords[0][row]), float(self.coords[1][row])
            if lat == lat and lon == lon:
                parts.append(b',"latitude":%r,"longitude":%r' % (lat, lon))
        return b"".join(parts)


def time_range(records: Sequence[RawRecord]) -> tuple[int, int]:
    """Smallest and largest record timestamps (ms) of a batch."""
    stamps = [r.timestamp_ms or 0 for r in records]
    return min(stamps), max(stamps)
