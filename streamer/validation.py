"""Decoding and validation of raw records; failures become DeadLetter messages, never exceptions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from fraudstream.contracts import CONTEXT_MAX_FUTURE_SKEW_S, CONTEXT_NOW, DeadLetter, Label, Transaction
from streamer.outputs import OutputMessage, contract_headers

if TYPE_CHECKING:
    from streamer.core import RawRecord

#: Larger originals are cut in the DLQ record, so that it fits Kafka's default 1 MB record limit after base64
#: (a 1 MB letter would abort every transaction of its batch: a crash loop); the whole record stays in its topic.
MAX_DLQ_ORIGINAL_BYTES = 256 * 1024


@dataclass(frozen=True)
class DecodeFailure:
    """Why a record cannot be processed: an error class name and one readable line."""

    error_class: str
    message: str


def _text(value: bytes | None) -> str | DecodeFailure:
    if value is None or not value.strip():
        return DecodeFailure("EmptyRecord", "the record value is empty")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DecodeFailure("InvalidUtf8", f"the record value is not UTF-8 (byte {exc.start}: {exc.reason})")


def _describe(exc: ValidationError) -> DecodeFailure:
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    kinds = {error["type"] for error in exc.errors(include_url=False)}
    error_class = "InvalidJson" if kinds & {"json_invalid", "json_type"} else "SchemaViolation"
    return DecodeFailure(error_class, "; ".join(parts))


def decode_transaction(value: bytes | None, now: datetime, max_future_skew_s: float) -> Transaction | DecodeFailure:
    """A validated Transaction, or why not (future skew checked against the injected clock's now)."""
    text = _text(value)
    if isinstance(text, DecodeFailure):
        return text
    context = {CONTEXT_NOW: now, CONTEXT_MAX_FUTURE_SKEW_S: max_future_skew_s}
    try:
        return Transaction.model_validate_json(text, context=context)
    except ValidationError as exc:
        return _describe(exc)


def decode_label(value: bytes | None) -> Label | DecodeFailure:
    text = _text(value)
    if isinstance(text, DecodeFailure):
        return text
    try:
        return Label.model_validate_json(text)
    except ValidationError as exc:
        return _describe(exc)


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
    return OutputMessage(dlq_topic, record.key or b"", value, contract_headers("dead_letter"))
