"""The console on a real PostgreSQL server with the real broker: migrations, alerts from the topic, a verdict to
the labels topic, the audit trail in the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.db import session_factory
from console.schema import AlertRow, AuditEvent, Case
from console.server import Console, build_console
from fraudstream.clock import SystemClock
from fraudstream.contracts import Label
from fraudstream.settings import Settings
from tests.console_support import add_users, csrf_of, login, make_alert
from tests.postgres_support import postgres_database, postgres_url  # noqa: F401 - fixtures
from tests.streamer_kafka_support import isolated_settings, publish, read_all, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_console(
    stack_settings: Settings, unique_name: str, tmp_path: Path, postgres_database: str  # noqa: F811
) -> Iterator[Console]:
    settings = isolated_settings(stack_settings, unique_name, tmp_path / "registry").with_overrides(
        database={"url": postgres_database},
        embedded={"state_dir": str(tmp_path / "state")},
        console={"consumer_group": f"{unique_name}-console"},
    )
    console = build_console(settings, clock=SystemClock())
    add_users(console, SystemClock())  # type: ignore[arg-type]
    yield console
    console.engine.dispose()


def test_migrations_alerts_and_a_verdict_on_postgresql(pg_console: Console) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from console.migrate import VERSION_TABLE, current_revision
    from console.schema import Base

    assert pg_console.engine.dialect.name == "postgresql" and current_revision(pg_console.engine) == "0002"
    with pg_console.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []

    settings = pg_console.app.state.console.settings
    alert, other = make_alert(1, card="C1", merchant="M3"), make_alert(2, card="C1")
    raw = [(a.transaction.user_id, a.model_dump_json().encode()) for a in (alert, other)]
    sessions = session_factory(pg_console.engine)
    with TestClient(pg_console.app) as client:  # starts the alert consumer
        publish(settings, [*raw, raw[0]], topic=settings.topics.alerts)  # the first one twice: stored once
        ingestor = pg_console.ingestor
        assert ingestor is not None
        wait_until(lambda: ingestor.stored >= 2 and ingestor.batches >= 1, 60, "the alerts stored")
        with sessions() as db:
            rows = list(db.scalars(select(AlertRow)))
            assert sorted(r.transaction_id for r in rows) == ["T1", "T2"] and len({r.case_id for r in rows}) == 1
        login(client, "ana")
        queue = client.get("/alerts").text
        assert queue.index('data-transaction-id="T2"') < queue.index('data-transaction-id="T1"')
        page = client.get(f"/alerts/{alert.alert_id}")
        response = client.post(f"/alerts/{alert.alert_id}/verdict",
                               data={"csrf_token": csrf_of(page.text), "verdict": "fraud", "note": "card stolen"})
        assert response.status_code == 200 and "label sent" in response.text
    # a restarted console resumes after the committed offsets: only the new alert is read
    again = build_console(settings, clock=SystemClock())
    try:
        with TestClient(again.app):
            third = make_alert(3, card="C2")
            publish(settings, [(third.transaction.user_id, third.model_dump_json().encode())],
                    topic=settings.topics.alerts)
            resumed = again.ingestor
            assert resumed is not None
            wait_until(lambda: resumed.consumed >= 1, 60, "the new alert stored and committed after the restart")
            assert (resumed.consumed, resumed.stored) == (1, 1)
    finally:
        again.engine.dispose()
    labels = read_all(settings, settings.topics.labels)
    assert len(labels) == 1
    label = Label.model_validate_json(labels[0].value())
    assert (label.transaction_id, label.user_id, label.merchant_id, label.is_fraud) == ("T1", "C1", "M3", True)
    headers = dict(labels[0].headers())
    assert headers["analyst"] == b"ana" and headers["note"] == b"card stolen" and headers["record-type"] == b"label"
    with sessions() as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.actor == "ana").order_by(AuditEvent.id)))
        assert [e.action for e in events] == ["login", "verdict", "alert.status", "case.status"]
        assert all(e.source == "testclient" and e.at.tzinfo is not None for e in events)
        case = db.get(Case, rows[0].case_id)
        assert case is not None and case.status == "fraud"
