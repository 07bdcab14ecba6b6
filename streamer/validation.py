"""Decoding and validation of raw records; failures become DeadLetter messages, never exceptions."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from fraudstream.contracts import (
    CONTEXT_MAX_FUTURE_SKEW_S,
    CONTEXT_NOW,
    RECORD_TYPE_HEADER,
    SCHEMA_VERSION,
    SCHEMA_VERSION_HEADER,
    DeadLetter,
    Label,
    Transaction,
)
from streamer.outputs import OutputMessage, contract_headers
from streamer.wire import TxnRows, fast_rows

if TYPE_CHECKING:
    from streamer.core import RawRecord

#: Larger originals are cut in the DLQ record, so that it fits Kafka's default 1 MB record limit after base64
#: (a 1 MB letter would abort every transaction of its batch: a crash loop); the whole record stays in its topic.
MAX_DLQ_ORIGINAL_BYTES = 256 * 1024


#: Every error class a dead letter can carry, and its short reason code (the `error-reason` DLQ header).
ERROR_REASONS: dict[str, str] = {
    "EmptyRecord": "empty-record",
    "InvalidUtf8": "invalid-utf8",
    "InvalidJson": "invalid-json",
    "SchemaViolation": "schema-violation",
    "DuplicateKey": "duplicate-key",
    "InvalidHeader": "invalid-header",
    "KeyMismatch": "key-mismatch",
    "UnexpectedTopic": "unexpected-topic",
    "DuplicateTransaction": "duplicate",
}
#: DLQ headers, the Kafka Connect way (`__connect.errors.*`), under names of our own.
DLQ_ERROR_CLASS_HEADER = "error-class"
DLQ_ERROR_REASON_HEADER = "error-reason"
DLQ_ERROR_MESSAGE_HEADER = "error-message"
DLQ_ERROR_TOPIC_HEADER = "error-topic"
DLQ_ERROR_PARTITION_HEADER = "error-partition"
DLQ_ERROR_OFFSET_HEADER = "error-offset"
#: The error message header is cut to this many bytes (the whole message is in the DeadLetter body).
MAX_DLQ_MESSAGE_HEADER_BYTES = 1000

_SCHEMA_VERSION = SCHEMA_VERSION.encode()
#: The closing quote of an object key: `"` then optional JSON whitespace then `:`. In JSON without a backslash,
#: no string holds a `"`, and a string value is never followed by `:`, so this counts exactly the keys.
_KEY_END = re.compile(rb'"[ \t\r\n]*:')
_JSON_SPACE = b" \t\r\n"
#: The headers fraudstream's own producers write (the fast path of check_headers).
_USUAL_HEADERS = {kind: [(SCHEMA_VERSION_HEADER, _SCHEMA_VERSION), (RECORD_TYPE_HEADER, kind.encode())]
                  for kind in ("transaction", "label")}


@dataclass(frozen=True)
class DecodeFailure:
    """Why a record cannot be processed: an error class name and one readable line."""

    error_class: str
    message: str

    @property
    def reason(self) -> str:
        return ERROR_REASONS.get(self.error_class, "other")


class _Source(Protocol):
    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> list[tuple[str, bytes | None]]: ...


def _text(value: bytes | None) -> DecodeFailure | None:
    if value is None or not value.strip():
        return DecodeFailure("EmptyRecord", "the record value is empty")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DecodeFailure("InvalidUtf8", f"the record value is not UTF-8 (byte {exc.start}: {exc.reason})")
    return None


def _describe(exc: ValidationError) -> DecodeFailure:
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    more = len(errors) - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    kinds = {error["type"] for error in errors}
    error_class = "InvalidJson" if kinds & {"json_invalid", "json_type"} else "SchemaViolation"
    return DecodeFailure(error_class, "; ".join(parts))


def _shown(raw: bytes | None) -> str:
    return "null" if raw is None else repr(raw[:40].decode("utf-8", errors="backslashreplace"))


def check_headers(headers: list[tuple[str, bytes | None]], record_type: str) -> DecodeFailure | None:
    """`schema-version`, when present, must be SCHEMA_VERSION (absent: taken as the current version; fraudstream's
    own producers always send it); `record-type`, when present, must be the topic's type."""
    if headers == _USUAL_HEADERS[record_type] or not headers:
        return None
    for name, raw in headers:
        if name == SCHEMA_VERSION_HEADER and raw != _SCHEMA_VERSION:
            return DecodeFailure("InvalidHeader", f"header {name} is {_shown(raw)}; expected '{SCHEMA_VERSION}'")
        if name == RECORD_TYPE_HEADER and raw != record_type.encode():
            return DecodeFailure("InvalidHeader", f"header {name} is {_shown(raw)} on a topic of {record_type!r}")
    return None


def check_key(key: bytes | None, user_id: str) -> DecodeFailure | None:
    """The Kafka key must be the record's user_id in UTF-8 (one user's events on one partition, one state)."""
    if key == user_id.encode():
        return None
    if key is None:
        return DecodeFailure("KeyMismatch", f"key-mismatch: the record has no key; it must be its user_id {user_id!r}")
    return DecodeFailure("KeyMismatch", f"key-mismatch: key {_shown(key)} is not the record's user_id {user_id!r}")


def duplicate_key(value: bytes) -> str | None:
    """The first key repeated in an object of this JSON document (exact, slow: only called when a scan suspects)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            seen: set[str] = set()
            found.extend(name for name in names if name in seen or seen.add(name))  # type: ignore[func-returns-value]
        return dict(items)

    try:
        json.loads(value, object_pairs_hook=pairs)
    except ValueError:
        return None
    return found[0] if found else None


def _key_count(raw: bytes) -> int:
    """Object keys in JSON without a backslash: `":` counted directly (fast) unless a quote is followed by
    whitespace somewhere, then with the regex that allows whitespace before the colon."""
    if b'" ' in raw or b'"\t' in raw or b'"\n' in raw or b'"\r' in raw:
        return len(_KEY_END.findall(raw))
    return raw.count(b'":')


def _duplicate_failure(value: bytes, keys: int) -> DecodeFailure | None:
    """A cheap scan (keys counted in the raw bytes against the fields pydantic set), the exact check only if the scan
    cannot tell (a backslash) or suspects a repeated key."""
    if b"\\" not in value and _key_count(value) == keys:
        return None
    name = duplicate_key(value)
    return None if name is None else DecodeFailure("DuplicateKey", f"{name}: the key appears more than once")


Contract = TypeVar("Contract", Transaction, Label)


def _decode_one(
    contract: type[Contract], value: bytes | None, context: dict[str, Any] | None
) -> Contract | DecodeFailure:
    failure = _text(value)
    if failure is not None:
        return failure
    assert value is not None
    try:
        parsed = contract.model_validate_json(value, context=context)
    except ValidationError as exc:
        return _describe(exc)
    duplicate = _duplicate_failure(value, len(parsed.model_fields_set))
    return parsed if duplicate is None else duplicate


def decode_transaction(value: bytes | None, now: datetime, max_future_skew_s: float) -> Transaction | DecodeFailure:
    """A validated Transaction, or why not (future skew checked against the injected clock's now)."""
    return _decode_one(Transaction, value, {CONTEXT_NOW: now, CONTEXT_MAX_FUTURE_SKEW_S: max_future_skew_s})


def decode_label(value: bytes | None) -> Label | DecodeFailure:
    return _decode_one(Label, value, None)


_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {
    Transaction: TypeAdapter(list[Transaction]),
    Label: TypeAdapter(list[Label]),
}


def _validate_batch(
    contract: type[Contract], values: list[bytes], context: dict[str, Any] | None
) -> list[Contract | DecodeFailure]:
    """One pydantic call over the values joined into one JSON array (`,` and a newline between them); if any item
    fails, those records are decoded alone (for their reason) and the rest validated again as one array; broken
    JSON anywhere: every record alone.

    Why item i is exactly record i: every value starts with `{`; a raw newline cannot sit inside a JSON string, so no
    string spans two values; every item validated, so no item holds a nested object, so every `{` outside a string
    starts an item; with as many items as values, each value starts exactly one, and what follows an item's `}` in
    its value can only be whitespace. So each value alone is the same valid object."""
    if len(values) == 1:
        return [_decode_one(contract, values[0], context)]
    try:
        parsed: list[Contract] = _ADAPTERS[contract].validate_json(b"[" + b",\n".join(values) + b"]", context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        bad = {e["loc"][0] for e in errors if e["loc"]}
        if any(not e["loc"] for e in errors) or not bad <= set(range(len(values))):  # (no str loc in a list)
            return [_decode_one(contract, value, context) for value in values]
        out: dict[int, Contract | DecodeFailure] = {
            int(i): _decode_one(contract, values[int(i)], context) for i in bad
        }
        rest = [i for i in range(len(values)) if i not in bad]
        if rest:
            out.update(zip(rest, _validate_batch(contract, [values[i] for i in rest], context), strict=True))
        return [out[i] for i in range(len(values))]
    if len(parsed) != len(values):
        return [_decode_one(contract, value, context) for value in values]
    keys = [len(item.model_fields_set) for item in parsed]
    joined = b",".join(values)
    if b"\\" not in joined and _key_count(joined) == sum(keys):
        return list(parsed)
    return [item if (dup := _duplicate_failure(v, n)) is None else dup
            for v, item, n in zip(values, parsed, keys, strict=True)]


def decode_records(
    contract: type[Contract],
    records: Sequence[_Source],
    context: dict[str, Any] | None,
    check_keys: bool = True,
) -> list[Contract | DecodeFailure]:
    """Every record of one topic decoded and checked: headers, UTF-8, the strict contract validated per batch,
    duplicate JSON keys, and (check_keys) the Kafka key equal to user_id. Never raises for a bad record."""
    record_type = "transaction" if contract is Transaction else "label"
    usual = _USUAL_HEADERS[record_type]
    out: list[Contract | DecodeFailure | None] = [None] * len(records)
    framed: list[int] = []
    for i, record in enumerate(records):
        headers, value = record.headers, record.value
        failure = None if headers == usual or not headers else check_headers(headers, record_type)
        if failure is not None:
            out[i] = failure
        elif value is not None and value[:1] == b"{":
            framed.append(i)  # UTF-8 is checked by the JSON parser: bad bytes fail the batch, then each alone
        elif not value or not value.strip():
            out[i] = _text(value)
        elif value.lstrip(_JSON_SPACE)[:1] == b"{":
            framed.append(i)
        else:
            out[i] = _decode_one(contract, value, context)  # not an object: rejected, with its reason
    if framed:
        values = [records[i].value or b"" for i in framed]
        for i, item in zip(framed, _validate_batch(contract, values, context), strict=True):
            if check_keys and not isinstance(item, DecodeFailure) and records[i].key != item.user_id.encode():
                out[i] = check_key(records[i].key, item.user_id)
            else:
                out[i] = item
    return out  # type: ignore[return-value]  # every slot is filled above


def _framing(record: _Source, usual: list[tuple[str, bytes]], record_type: str) -> DecodeFailure | bool | None:
    """A record's header and framing verdict before the contract: a failure, True (a JSON object: validate it
    in the batch) or None (not an object: decode it alone for its reason)."""
    headers, value = record.headers, record.value
    failure = None if headers == usual or not headers else check_headers(headers, record_type)
    if failure is not None:
        return failure
    if value is not None and value[:1] == b"{":
        return True  # UTF-8 is checked by the JSON parser: bad bytes fail the batch, then each alone
    if not value or not value.strip():
        return _text(value)
    return True if value.lstrip(_JSON_SPACE)[:1] == b"{" else None


def decode_transactions(
    records: Sequence[_Source], now: datetime | None, max_future_skew_s: float
) -> tuple[dict[int, DecodeFailure], TxnRows]:
    """Every transaction record decoded and checked, as decode_records does, into columns: (failures by position,
    the valid ones as TxnRows with their positions). The fast path (streamer.wire) takes what it can prove; the
    rest goes through the pydantic contract per batch. Never raises for a bad record."""
    usual = _USUAL_HEADERS["transaction"]
    context = {CONTEXT_NOW: now, CONTEXT_MAX_FUTURE_SKEW_S: max_future_skew_s}
    failures: dict[int, DecodeFailure] = {}
    framed: list[int] = []
    for i, record in enumerate(records):
        verdict = _framing(record, usual, "transaction")
        if verdict is True:
            framed.append(i)
        elif isinstance(verdict, DecodeFailure):
            failures[i] = verdict
        else:
            item = _decode_one(Transaction, record.value, context)  # not an object: rejected, with its reason
            failures[i] = item if isinstance(item, DecodeFailure) else DecodeFailure("SchemaViolation", "not an object")
    values = [records[i].value or b"" for i in framed]
    fast = fast_rows(values, now, max_future_skew_s) if len(values) > 1 else None
    parts: list[TxnRows] = []
    slow = list(range(len(values)))
    if fast is not None:
        rows, slow = fast
        parts.append(replace(rows, index=[framed[j] for j in rows.index]))
    if slow:
        txns: list[Transaction] = []
        at: list[int] = []
        for j, item in zip(slow, _validate_batch(Transaction, [values[j] for j in slow], context), strict=True):
            if isinstance(item, DecodeFailure):
                failures[framed[j]] = item
            else:
                txns.append(item)
                at.append(framed[j])
        parts.append(TxnRows.of(at, txns))
    rows = parts[0] if len(parts) == 1 else TxnRows.concat(parts) if parts else TxnRows.of([], [])
    keys = [records[i].key for i in rows.index]
    expected = [u.encode() for u in rows.user_id]
    if keys != expected:
        keep = [j for j, (k, e) in enumerate(zip(keys, expected, strict=True)) if k == e]
        for j, (k, e) in enumerate(zip(keys, expected, strict=True)):
            if k != e:
                failures[rows.index[j]] = check_key(k, rows.user_id[j]) or DecodeFailure("KeyMismatch", "key")
        rows = rows.take(keep)
    return failures, rows


def dlq_headers(record: RawRecord, failure: DecodeFailure) -> list[tuple[str, bytes]]:
    """The contract headers, the error class, reason and message (its first MAX_DLQ_MESSAGE_HEADER_BYTES), and the
    record's position."""
    return [
        *contract_headers("dead_letter"),
        (DLQ_ERROR_CLASS_HEADER, failure.error_class.encode()),
        (DLQ_ERROR_REASON_HEADER, failure.reason.encode()),
        (DLQ_ERROR_MESSAGE_HEADER, failure.message.encode()[:MAX_DLQ_MESSAGE_HEADER_BYTES]),
        (DLQ_ERROR_TOPIC_HEADER, record.topic.encode()),
        (DLQ_ERROR_PARTITION_HEADER, str(record.partition).encode()),
        (DLQ_ERROR_OFFSET_HEADER, str(record.offset).encode()),
    ]


def dead_letter(record: RawRecord, failure: DecodeFailure, now: datetime, dlq_topic: str) -> OutputMessage:
    """The DLQ message for a record: original bytes (the first MAX_DLQ_ORIGINAL_BYTES), key, headers, position
    and the error."""
    value, message = record.value, failure.message
    if value is not None and len(value) > MAX_DLQ_ORIGINAL_BYTES:
        message = (
            f"original value of {len(value):,} bytes (sha256 {hashlib.sha256(value).hexdigest()}) cut to its first "
            f"{MAX_DLQ_ORIGINAL_BYTES:,}; the whole record stays at {record.topic}[{record.partition}]@"
            f"{record.offset}; {message}"
        )
        value = value[:MAX_DLQ_ORIGINAL_BYTES]
    letter = DeadLetter.from_record(
        value=value,
        key=record.key,
        headers=record.headers,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error_class=failure.error_class,
        error_message=message,
        seen_at=now,
    )
    value = letter.model_dump_json().encode()
    headers = dlq_headers(record, DecodeFailure(failure.error_class, message))
    return OutputMessage(dlq_topic, record.key or b"", value, headers)
