"""Helpers for the console tests: a console on a given database, users, alerts, a label recorder, logins."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fraudstream.clock import ManualClock
from fraudstream.contracts import Alert, Label, Reason, Transaction
from fraudstream.settings import Settings

PASSWORDS = {"ana": "analyst-password-1", "otto": "ops-password-123", "ada": "admin-password-1"}
ROLES = {"ana": "analyst", "otto": "ops", "ada": "admin"}
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class LabelRecorder:
    """Stands in for the labels topic in unit tests (the integration tests use the real producer)."""

    sent: list[tuple[Label, str | None, str]] = field(default_factory=list)

    def __call__(self, label: Label, note: str | None, analyst: str) -> None:
        self.sent.append((label, note, analyst))


def console_settings(base: Settings, tmp_path: Path, **database: Any) -> Settings:
    return base.with_overrides(
        embedded={"state_dir": str(tmp_path / "state")},
        database={"url": f"sqlite:///{tmp_path / 'console.db'}", **database},
    )


@functools.cache
def _hash(password: str) -> str:
    from console.passwords import hash_password

    return hash_password(password)  # argon2 takes about half a second here: once per password and test run


def add_users(console: Any, clock: ManualClock) -> None:
    """The three test users (analyst ana, ops otto, admin ada) through create_user, their hashes computed once."""
    from unittest.mock import patch

    from console.db import session_factory
    from console.roles import Role
    from console.users import create_user

    with session_factory(console.engine).begin() as db, patch("console.users.hash_password", _hash):
        for name, password in PASSWORDS.items():
            create_user(db, name, password, Role(ROLES[name]), actor="test", source="test", at=clock.now())


def make_alert(
    n: int, *, card: str = "C1", merchant: str = "M1", score: float = 0.9, version: str = "v1",
    amount: float = 5000.0, at: datetime | None = None,
) -> Alert:
    when = at or T0 + timedelta(minutes=n)
    txn = Transaction(
        transaction_id=f"T{n}", user_id=card, timestamp=when, amount=amount, merchant_id=merchant,
        merchant_category="electronics", country="FR",
    )
    return Alert.for_transaction(
        txn, score=score, threshold=0.5, model_version=version, scorer="stack",
        reasons=[Reason(feature="amount", value=amount, contribution=0.7,
                        text=f"amount {amount:.0f} is unusually high")],
        features={"amount": amount, "new_merchant": 1.0}, produced_at=when + timedelta(seconds=1),
    )


def store(console: Any, alerts: list[Alert], clock: ManualClock) -> int:
    from console.cases import IncomingAlert, store_alerts
    from console.db import session_factory

    with session_factory(console.engine).begin() as db:
        return store_alerts(
            db, [IncomingAlert(a, a.model_dump_json(), 0, i) for i, a in enumerate(alerts)], received_at=clock.now()
        )


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def login(client: Any, username: str, password: str | None = None) -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password or PASSWORDS[username]},
        follow_redirects=False,
    )
