"""Wire contracts: pydantic v2 models, JSON on the wire, JSON Schema files committed under schemas/.

Every record on a fraudstream topic is one of these. The schema version travels in the
`schema-version` Kafka header. Keys are user_id everywhere, so one user's events stay ordered.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = "1"
SCHEMA_VERSION_HEADER = "schema-version"
RECORD_TYPE_HEADER = "record-type"

#: Amounts above this are out of range for a single card or account transaction.
MAX_AMOUNT = 10_000_000.0
#: Event times before this are out of range (old data replayed by mistake, a zeroed clock).
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
#: Event times after this are out of range whatever the clock says (year 9999 and similar).
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)
#: Validation context key: an aware datetime "now"; with it, events further than
#: `max_future_skew_s` (context key, default 300 s) ahead of now are rejected.
CONTEXT_NOW = "now"
CONTEXT_MAX_FUTURE_SKEW_S = "max_future_skew_s"

_ALERT_NAMESPACE = uuid.UUID("6f1d3c2e-5b7a-4e0b-9a51-6a2f8f3e9c10")

#: Identifiers (transaction_id, user_id, merchant_id, device_id) and merchant_category: printable characters only,
#: that is Unicode letters (L), marks (M), numbers (N), punctuation (P) and symbols (S), with single or repeated
#: spaces (U+0020) allowed inside but never at either end. So no control (Cc: NUL, DEL, NEL, escapes), format (Cf:
#: bidi overrides, zero-width characters, BOM), separator other than an inner space (tabs, U+2028), private-use or
#: unassigned character is accepted, and nothing is stripped: a value is kept exactly as sent, or rejected.
_PRINTABLE = r"\p{L}\p{M}\p{N}\p{P}\p{S}"
IDENTIFIER_PATTERN = rf"^[{_PRINTABLE}](?:[{_PRINTABLE} ]*[{_PRINTABLE}])?$"
TEXT_PATTERN = IDENTIFIER_PATTERN
#: Timestamps on the wire: RFC 3339 with an uppercase T, seconds, 0-6 fraction digits and Z or +hh:mm/-hh:mm.
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)]
#: A number in strict mode: a JSON number (an integer is fine), never a bool or a string.
Number = Annotated[float, Strict()]


def _strict_timestamp(value: Any) -> Any:
    """Only an aware datetime (Python) or an RFC 3339 string (TIMESTAMP_PATTERN, then parsed by pydantic, which
    rejects impossible dates and times); no epoch numbers, no lax forms."""
    if isinstance(value, datetime) or (isinstance(value, str) and _TIMESTAMP_RE.fullmatch(value)):
        return value
    raise ValueError(
        f"timestamp must be an RFC 3339 string such as 2024-03-01T12:00:00.123456Z (uppercase T, "
        f"a timezone Z or +hh:mm, at most 6 fraction digits), not {str(value)[:40]!r}"
    )


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_strict_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]


class Channel(StrEnum):
    card_present = "card_present"
    online = "online"
    atm = "atm"
    transfer = "transfer"
    contactless = "contactless"
    other = "other"


class LabelSource(StrEnum):
    chargeback = "chargeback"
    analyst = "analyst"
    customer = "customer"
    dataset = "dataset"  # a label that came with an imported or simulated history


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class Transaction(_Contract):
    """One card or account transaction as the bank bus publishes it."""

    transaction_id: Identifier
    user_id: Identifier = Field(description="Card or customer id; the Kafka key.")
    timestamp: Timestamp = Field(description="Event time, RFC 3339 with an offset or Z; normalised to UTC.")
    amount: Number = Field(ge=0.0, le=MAX_AMOUNT, description="Finite, non-negative, bounded.")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    merchant_id: Identifier = Field(description="Merchant or terminal id.")
    merchant_category: ShortText | None = None
    channel: Channel | None = None
    latitude: Number | None = Field(default=None, ge=-90.0, le=90.0)
    longitude: Number | None = Field(default=None, ge=-180.0, le=180.0)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    device_id: Text | None = None

    @field_validator("amount")
    @classmethod
    def _finite_amount(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = _as_utc(value)
        if not MIN_EVENT_TIME <= value < MAX_EVENT_TIME:
            raise ValueError(f"timestamp {value.isoformat()} is outside [2000-01-01, 2100-01-01)")
        context = info.context if isinstance(info.context, dict) else None
        if context and context.get(CONTEXT_NOW) is not None:
            now: datetime = context[CONTEXT_NOW]
            skew = float(context.get(CONTEXT_MAX_FUTURE_SKEW_S, 300.0))
            if value > now + timedelta(seconds=skew):
                raise ValueError(f"timestamp {value.isoformat()} is more than {skew:.0f} s in the future")
        return value

    @model_validator(mode="after")
    def _coordinates_together(self) -> Transaction:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude must be given together or not at all")
        return self


class Label(_Contract):
    """A verdict on one transaction, from the security team, a chargeback or the customer.

    merchant_id and transaction_timestamp are optional: with them, the label feeds the delayed
    merchant-risk features; without them it is kept for retraining only.
    """

    transaction_id: Identifier
    user_id: Identifier
    is_fraud: StrictBool
    source: LabelSource
    labelled_at: Timestamp
    merchant_id: Identifier | None = None
    transaction_timestamp: Timestamp | None = None

    @field_validator("labelled_at", "transaction_timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class Reason(_Contract):
    """One feature's contribution to a score, in words an analyst reads."""

    feature: str
    value: float
    contribution: float
    text: str


class Explanation(_Contract):
    """The scorer's attributions of one alert: base_value + sum(attributions.values()) == the alert's score (before
    its rounding to SCORE_DECIMALS), in probability space (models/attribution.py says how each scorer is done)."""

    base_value: float
    space: Literal["probability"]
    method: str
    attributions: dict[str, float]


def alert_id_for(transaction_id: str) -> str:
    """Deterministic: a re-emitted alert for the same transaction has the same id."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, transaction_id))


class Alert(_Contract):
    alert_id: str
    transaction: Transaction
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    model_version: str
    scorer: Literal["mlp", "stack", "blend"]
    reasons: list[Reason]
    features: dict[str, float]
    produced_at: AwareDatetime
    explanation: Explanation | None = None

    @classmethod
    def for_transaction(cls, transaction: Transaction, **fields: Any) -> Alert:
        return cls(alert_id=alert_id_for(transaction.transaction_id), transaction=transaction, **fields)


class ScoreRecord(_Contract):
    """Every score the streamer produces goes to the `scores` topic, for audit and backtests."""

    transaction_id: Identifier
    user_id: Identifier
    timestamp: AwareDatetime
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    alerted: bool
    model_version: str
    scorer: Literal["mlp", "stack", "blend"]
    produced_at: AwareDatetime


class DeadLetter(_Contract):
    """A record that could not be processed, with everything needed to inspect and replay it."""

    original_b64: str
    key_b64: str | None
    headers: list[tuple[str, str | None]] = Field(description="Header name and base64 value.")
    topic: str
    partition: int
    offset: int
    error_class: str
    error_message: str
    seen_at: AwareDatetime

    @classmethod
    def from_record(
        cls,
        *,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        topic: str,
        partition: int,
        offset: int,
        error_class: str,
        error_message: str,
        seen_at: datetime,
    ) -> DeadLetter:
        def b64(raw: bytes | None) -> str | None:
            return None if raw is None else base64.b64encode(raw).decode("ascii")

        return cls(
            original_b64=b64(value) or "",
            key_b64=b64(key),
            headers=[(name, b64(raw)) for name, raw in (headers or [])],
            topic=topic,
            partition=partition,
            offset=offset,
            error_class=error_class,
            error_message=error_message[:2000],
            seen_at=seen_at,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


CONTRACTS: dict[str, type[BaseModel]] = {
    "transaction": Transaction,
    "label": Label,
    "alert": Alert,
    "score": ScoreRecord,
    "dead_letter": DeadLetter,
}


def schema_fingerprint() -> str:
    """sha256 over every contract's JSON Schema; changes when any contract changes."""
    import json

    digest = hashlib.sha256()
    for name in sorted(CONTRACTS):
        digest.update(json.dumps(CONTRACTS[name].model_json_schema(), sort_keys=True).encode())
    return digest.hexdigest()
