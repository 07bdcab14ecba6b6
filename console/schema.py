"""The console's tables: users, cases (one card's alerts), alerts, verdicts and the audit trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Alert and case statuses. An alert is `new` until a verdict; a case is `open` while any alert is undecided.
ALERT_STATUSES = ("new", "needs_review", "fraud", "legit")
CASE_STATUSES = ("open", "needs_review", "fraud", "legit")
#: Training and backtest runs started from the console.
RUN_KINDS = ("train", "backtest")
RUN_STATUSES = ("queued", "running", "done", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on PostgreSQL (timestamptz) and SQLite (which keeps no zone) alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Case(Base):
    """The alerts of one card (the transaction's user_id) until every one of them has a verdict."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertRow(Base):
    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(128), index=True)
    card_id: Mapped[str] = mapped_column(String(128), index=True)
    merchant_id: Mapped[str] = mapped_column(String(128), index=True)
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    transaction_time: Mapped[datetime] = mapped_column(UTCDateTime())
    score: Mapped[float] = mapped_column(Float, index=True)
    threshold: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    scorer: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True, default="new")
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    #: The Alert record as it came off the topic (transaction, reasons, features).
    payload: Mapped[str] = mapped_column(Text)
    produced_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(Integer)

    @property
    def top_reason(self) -> str:
        reasons = json.loads(self.payload).get("reasons") or []
        return str(reasons[0].get("text", "")) if reasons else ""


class VerdictRow(Base):
    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    analyst: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: True when a Label went to the labels topic (fraud and legit; needs_review sends none).
    published: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Who did what, when and from where: logins, verdicts, status changes, users, promotions."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: JSON object with the details (verdict and note, old and new status, ...).
    detail: Mapped[str] = mapped_column(Text, default="{}")
    #: The client address of the request, or `cli@<host>` for the command line.
    source: Mapped[str] = mapped_column(String(128))


class JobRun(Base):
    """A training run or a backtest started from the console, run by its worker thread in a folder of its own."""

    __tablename__ = "console_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    started_by: Mapped[str] = mapped_column(String(64))
    #: The uploaded history (its upload id) the run reads.
    upload_id: Mapped[str] = mapped_column(String(64))
    #: JSON object with the run's options (training config, range, model, publish).
    options: Mapped[str] = mapped_column(Text, default="{}")
    #: The last progress message and, where known, done/total steps (a progress bar).
    message: Mapped[str] = mapped_column(String(300), default="")
    done_steps: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CardScore(Base):
    """One score record from the `scores` topic: a card's recent transactions and their scores (the last N kept)."""

    __tablename__ = "card_scores"
    __table_args__ = (UniqueConstraint("transaction_id", name="uq_card_scores_transaction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(128))
    card_id: Mapped[str] = mapped_column(String(128), index=True)
    transaction_time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    alerted: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str] = mapped_column(String(64))
    scorer: Mapped[str] = mapped_column(String(8))
    produced_at: Mapped[datetime] = mapped_column(UTCDateTime())
