"""Audit rows: who did what, when and from where. Written in the same transaction as the change they record."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from console.schema import AuditEvent


def record(
    db: Session, *, at: datetime, actor: str, action: str, source: str, target: str | None = None, **detail: Any
) -> AuditEvent:
    event = AuditEvent(
        at=at, actor=actor, action=action, target=target, source=source[:128],
        detail=json.dumps(detail, sort_keys=True, default=str),
    )
    db.add(event)
    return event


def cli_source() -> str:
    return f"cli@{socket.gethostname()}"
