"""Alerts into cases, the queue's query, and verdicts (to the labels topic, into the case, into the audit trail)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from console import audit
from console.schema import ALERT_STATUSES, AlertRow, Case, VerdictRow
from fraudstream.clock import Clock
from fraudstream.contracts import Alert, Label, LabelSource
from fraudstream.errors import InputError
from fraudstream.settings import Settings

VERDICTS = ("fraud", "legit", "needs_review")
OPEN_CASE_STATUSES = ("open", "needs_review")
MAX_NOTE = 2000

#: Sends one verdict's Label to the labels topic: (label, note, analyst). The console uses streamer.labelling.
LabelPublisher = Callable[[Label, str | None, str], None]


def kafka_label_publisher(settings: Settings) -> LabelPublisher:
    """The label producer of `fraudstream label`, with the analyst's id and the note as headers."""
    from streamer.labelling import publish_label

    def publish(label: Label, note: str | None, analyst: str) -> None:
        publish_label(settings, label, note=note, analyst=analyst)

    return publish


@dataclass(frozen=True)
class IncomingAlert:
    alert: Alert
    raw: str
    partition: int
    offset: int


def store_alerts(db: Session, incoming: Sequence[IncomingAlert], *, received_at: datetime) -> int:
    """Insert the alerts not stored yet (an alert re-read after a restart is skipped by its id), each into its card's
    open case (a new case when the card has none). Returns how many were new. The caller commits."""
    ids = [item.alert.alert_id for item in incoming]
    seen = set(db.scalars(select(AlertRow.alert_id).where(AlertRow.alert_id.in_(ids)))) if ids else set()
    cases: dict[str, Case] = {}
    added = 0
    for item in incoming:
        alert = item.alert
        if alert.alert_id in seen:
            continue
        seen.add(alert.alert_id)
        txn = alert.transaction
        case = cases.get(txn.user_id) or open_case_of(db, txn.user_id)
        if case is None:
            case = Case(card_id=txn.user_id, status="open", opened_at=received_at, updated_at=received_at)
            db.add(case)
            db.flush()
        case.updated_at = received_at
        cases[txn.user_id] = case
        db.add(
            AlertRow(
                alert_id=alert.alert_id, transaction_id=txn.transaction_id, card_id=txn.user_id,
                merchant_id=txn.merchant_id, amount=txn.amount, currency=txn.currency, transaction_time=txn.timestamp,
                score=alert.score, threshold=alert.threshold, model_version=alert.model_version, scorer=alert.scorer,
                status="new", case_id=case.id, payload=item.raw, produced_at=alert.produced_at,
                received_at=received_at, kafka_partition=item.partition, kafka_offset=item.offset,
            )
        )
        added += 1
    return added


def open_case_of(db: Session, card_id: str) -> Case | None:
    query = select(Case).where(Case.card_id == card_id, Case.status.in_(OPEN_CASE_STATUSES)).order_by(Case.id.desc())
    return db.scalars(query.limit(1)).first()


def case_status(alert_statuses: Sequence[str]) -> str:
    """fraud if any alert is fraud; else needs_review if any is; else open while any is new; else legit."""
    for status in ("fraud", "needs_review"):
        if status in alert_statuses:
            return status
    return "open" if "new" in alert_statuses or not alert_statuses else "legit"


@dataclass(frozen=True)
class QueueFilter:
    min_score: float | None = None
    max_score: float | None = None
    card: str | None = None
    merchant: str | None = None
    model_version: str | None = None
    status: str | None = None

    def query(self) -> Select[AlertRow]:
        query = select(AlertRow)
        if self.min_score is not None:
            query = query.where(AlertRow.score >= self.min_score)
        if self.max_score is not None:
            query = query.where(AlertRow.score <= self.max_score)
        if self.card:
            query = query.where(AlertRow.card_id == self.card)
        if self.merchant:
            query = query.where(AlertRow.merchant_id == self.merchant)
        if self.model_version:
            query = query.where(AlertRow.model_version == self.model_version)
        if self.status:
            if self.status not in ALERT_STATUSES:
                raise InputError(f"status must be one of {', '.join(ALERT_STATUSES)}")
            query = query.where(AlertRow.status == self.status)
        return query.order_by(AlertRow.produced_at.desc(), AlertRow.received_at.desc(), AlertRow.alert_id)


def queue(db: Session, filters: QueueFilter, limit: int = 200) -> list[AlertRow]:
    """Newest first."""
    return list(db.scalars(filters.query().limit(limit)))


def give_verdict(
    db: Session,
    alert: AlertRow,
    verdict: str,
    *,
    note: str | None,
    analyst: str,
    source: str,
    settings: Settings,
    clock: Clock,
    publish: LabelPublisher,
) -> VerdictRow:
    """Record a verdict: fraud and legit go to the labels topic first (nothing is recorded if that fails), then the
    verdict, the alert's and the case's new status and their audit rows. The caller commits."""
    from streamer.labelling import build_label

    if verdict not in VERDICTS:
        raise InputError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InputError(f"the note is longer than {MAX_NOTE:,} characters; shorten it")
    now = clock.now()
    published = False
    if verdict in ("fraud", "legit"):
        label = build_label(
            settings, alert.transaction_id, is_fraud=verdict == "fraud", source=LabelSource.analyst,
            user=alert.card_id, merchant=alert.merchant_id, at=alert.transaction_time, clock=clock,
        )
        publish(label, note, analyst)
        published = True
    row = VerdictRow(
        alert_id=alert.alert_id, case_id=alert.case_id, analyst=analyst, verdict=verdict, note=note,
        published=published, created_at=now,
    )
    db.add(row)
    audit.record(
        db, at=now, actor=analyst, action="verdict", target=f"alert:{alert.alert_id}", source=source,
        verdict=verdict, note=note, transaction_id=alert.transaction_id, label_published=published,
    )
    if alert.status != verdict:
        audit.record(
            db, at=now, actor=analyst, action="alert.status", target=f"alert:{alert.alert_id}", source=source,
            old=alert.status, new=verdict,
        )
        alert.status = verdict
    case = db.get(Case, alert.case_id)
    if case is not None:
        db.flush()
        statuses = list(db.scalars(select(AlertRow.status).where(AlertRow.case_id == case.id)))
        new_status = case_status(statuses)
        if new_status != case.status:
            audit.record(
                db, at=now, actor=analyst, action="case.status", target=f"case:{case.id}", source=source,
                old=case.status, new=new_status,
            )
            case.status = new_status
        case.updated_at = now
    return row
