"""Output messages of the core and their compact binary encoding (cached in Redis so replays re-emit equal bytes)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import orjson

from fraudstream.contracts import RECORD_TYPE_HEADER, SCHEMA_VERSION, SCHEMA_VERSION_HEADER, Transaction
from fraudstream.errors import StateStoreError

_FORMAT = b"\x01"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


@dataclass
class OutputMessage:
    """One record to produce: alerts, scores, dead letters and late records."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def contract_headers(record_type: str) -> list[tuple[str, bytes]]:
    """The headers every fraudstream record carries: schema version and record type."""
    return [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode()), (RECORD_TYPE_HEADER, record_type.encode())]


def score_json(
    txn: Transaction, score: float, threshold: float, alerted: bool, model_version: str, scorer: str, now: datetime
) -> bytes:
    """The `ScoreRecord` JSON of one score, without building the model (the contract test parses it back)."""
    return orjson.dumps(
        {
            "transaction_id": txn.transaction_id,
            "user_id": txn.user_id,
            "timestamp": txn.timestamp,
            "score": score,
            "threshold": threshold,
            "alerted": alerted,
            "model_version": model_version,
            "scorer": scorer,
            "produced_at": now,
        },
        option=orjson.OPT_UTC_Z,
    )


def score_values(
    transaction_ids: Sequence[str],
    user_ids: Sequence[str],
    timestamps: Sequence[datetime],
    scores: Sequence[float],
    threshold: float,
    alerted: Sequence[bool],
    model_version: str,
    scorer: str,
    now: datetime,
) -> list[bytes]:
    """`score_json` of a batch of scores, one JSON value each (the constant fields shared)."""
    dumps, utc_z = orjson.dumps, orjson.OPT_UTC_Z
    return [
        dumps({"transaction_id": t, "user_id": u, "timestamp": ts, "score": sc, "threshold": threshold,
               "alerted": a, "model_version": model_version, "scorer": scorer, "produced_at": now}, option=utc_z)
        for t, u, ts, sc, a in zip(transaction_ids, user_ids, timestamps, scores, alerted, strict=True)
    ]  # fmt: skip


def _blob(raw: bytes) -> bytes:
    return _U32.pack(len(raw)) + raw


@lru_cache(maxsize=256)
def _topic_segment(topic: str) -> bytes:
    return _blob(topic.encode())


@lru_cache(maxsize=256)
def _header_segment(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    return _U16.pack(len(headers)) + b"".join(_blob(name.encode()) + _blob(value) for name, value in headers)


def encode_messages(messages: Sequence[OutputMessage]) -> bytes:
    """A self-delimiting byte string holding the messages of one input record (order kept).

    Topic and header segments repeat from record to record, so they are encoded once and reused.
    """
    parts: list[bytes] = [_FORMAT, _U16.pack(len(messages))]
    for message in messages:
        parts += (
            _topic_segment(message.topic),
            _U32.pack(len(message.key)),
            message.key,
            _U32.pack(len(message.value)),
            message.value,
            _header_segment(tuple(message.headers)),
        )
    return b"".join(parts)


_ONE = _FORMAT + _U16.pack(1)


def encode_one(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> bytes:
    """encode_messages of a single message (the common case: a score alone), without building the message."""
    return b"".join((_ONE, _topic_segment(topic), _U32.pack(len(key)), key, _U32.pack(len(value)), value,
                     _header_segment(tuple(headers))))  # fmt: skip


def decode_messages(raw: bytes) -> list[OutputMessage]:
    """Inverse of encode_messages; StateStoreError if the cached bytes are not ours (corrupt or foreign)."""
    view = memoryview(raw)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise StateStoreError("a cached output in Redis is truncated; flush the streamer's namespace and replay")
        chunk = bytes(view[pos : pos + n])
        pos += n
        return chunk

    def blob() -> bytes:
        (size,) = _U32.unpack(take(4))
        return take(size)

    if take(1) != _FORMAT:
        raise StateStoreError("a cached output in Redis has an unknown format; flush the streamer's namespace")
    (count,) = _U16.unpack(take(2))
    messages: list[OutputMessage] = []
    for _ in range(count):
        topic = blob().decode()
        key = blob()
        value = blob()
        (n_headers,) = _U16.unpack(take(2))
        headers = [(blob().decode(), blob()) for _ in range(n_headers)]
        messages.append(OutputMessage(topic, key, value, headers))
    if pos != len(view):
        raise StateStoreError("a cached output in Redis has trailing bytes; flush the streamer's namespace")
    return messages
