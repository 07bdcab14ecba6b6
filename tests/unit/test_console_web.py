"""The console through FastAPI's TestClient on SQLite: login, every route behind it, roles, CSRF, verdicts, audit."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from console.cases import case_status
from console.db import session_factory
from console.roles import GRANTS, Permission, Role, allowed
from console.schema import AlertRow, AuditEvent, Case, User, VerdictRow
from console.server import Console, build_console
from console.web import SESSION_COOKIE, safe_next
from fraudstream.clock import ManualClock
from tests.conftest import make_test_settings
from tests.console_support import (
    T0,
    LabelRecorder,
    add_users,
    console_settings,
    csrf_of,
    login,
    make_alert,
    store,
)

#: Each page and the permission that opens it.
PAGES = {"/alerts": Permission.view_alerts, "/alerts/rows": Permission.view_alerts, "/cases": Permission.view_alerts,
         "/models": Permission.view_models, "/users": Permission.manage_users, "/audit": Permission.view_audit,
         "/dashboard": Permission.view_dashboard}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def labels() -> LabelRecorder:
    return LabelRecorder()


@pytest.fixture
def console(tmp_path: Path, clock: ManualClock, labels: LabelRecorder) -> Iterator[Console]:
    settings = console_settings(make_test_settings(registry={"path": str(tmp_path / "registry")}), tmp_path)
    built = build_console(settings, clock=clock, publish=labels, consume=False)
    add_users(built, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(console.app) as test_client:
        yield test_client


def audit_rows(console: Console, action: str | None = None) -> list[AuditEvent]:
    with session_factory(console.engine)() as db:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(db.scalars(query))


def _concrete(path: str) -> str:
    return path.replace("{alert_id}", "x").replace("{case_id}", "1").replace("{user_id}", "1").replace("{version}", "v")


def test_every_route_but_login_needs_a_logged_in_user(client: TestClient, console: Console) -> None:
    from console.pages import router

    routes = [r for r in router.routes if isinstance(r, APIRoute) and r.path != "/login"]
    assert len(routes) >= 14
    token = csrf_of(client.get("/login").text)  # an anonymous session's token: CSRF passes, login does not
    for route in routes:
        for method in route.methods:
            path = _concrete(route.path)
            if method == "GET":
                response = client.get(path, follow_redirects=False)
                if path.endswith("/rows"):  # the live queue's fragment: no redirect into a table body
                    assert response.status_code == 401, path
                    continue
                assert response.status_code == 303, path
                assert response.headers["location"].startswith("/login?next="), path
            else:
                response = client.request(method, path, data={"csrf_token": token, "verdict": "fraud"},
                                          follow_redirects=False)
                assert response.status_code == 401, (method, path, response.status_code)
    assert not labels_of(client)


def labels_of(client: TestClient) -> list[Any]:
    state = client.app.state.console  # type: ignore[attr-defined]
    return list(state.publish_label.sent)


def test_wrong_password_and_unknown_user_are_refused_and_audited(client: TestClient, console: Console) -> None:
    assert login(client, "ana", "not-the-password").status_code == 401
    assert login(client, "nobody", "whatever-password").status_code == 401
    assert client.get("/alerts", follow_redirects=False).status_code == 303
    ok = login(client, "ana")
    assert ok.status_code == 303 and ok.headers["location"] == "/alerts"
    assert client.get("/alerts").status_code == 200
    failed = audit_rows(console, "login.failed")
    assert [(e.actor, json.loads(e.detail)["reason"], e.source) for e in failed] == [
        ("ana", "wrong password", "testclient"), ("nobody", "unknown user", "testclient")
    ]
    (success,) = audit_rows(console, "login")
    assert (success.actor, success.source, success.at) == ("ana", "testclient", T0)


def test_the_session_cookie_is_signed_http_only_and_strict(client: TestClient) -> None:
    response = login(client, "ana")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert client.get("/alerts", follow_redirects=False).status_code == 303  # a tampered cookie is no session


def test_logout_ends_the_session(client: TestClient, console: Console) -> None:
    login(client, "ana")
    token = csrf_of(client.get("/alerts").text)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/alerts", follow_redirects=False).status_code == 303
    assert [e.actor for e in audit_rows(console, "logout")] == ["ana"]


@pytest.mark.parametrize("username", ["ana", "otto", "ada"])
def test_each_role_sees_only_its_pages(client: TestClient, username: str) -> None:
    from tests.console_support import ROLES

    role = Role(ROLES[username])
    login(client, username)
    for page, permission in PAGES.items():
        expected = 200 if permission in GRANTS[role] else 403
        assert client.get(page).status_code == expected, (username, page)
    assert client.get("/", follow_redirects=False).headers["location"] == {"analyst": "/alerts", "ops": "/models",
                                                                          "admin": "/users"}[role]


def test_the_role_table() -> None:
    assert allowed("analyst", Permission.give_verdict) and not allowed("analyst", Permission.manage_users)
    assert allowed("ops", Permission.change_models) and not allowed("ops", Permission.give_verdict)
    assert allowed("admin", Permission.manage_users) and not allowed("admin", Permission.give_verdict)
    assert not allowed("admin", Permission.change_models) and not allowed("root", Permission.view_alerts)


def test_an_analyst_cannot_create_users_nor_ops_give_verdicts(
    client: TestClient, console: Console, clock: ManualClock, labels: LabelRecorder
) -> None:
    alert = make_alert(1)
    store(console, [alert], clock)
    login(client, "ana")
    token = csrf_of(client.get("/alerts").text)
    refused = client.post("/users", data={"csrf_token": token, "username": "eve", "password": "eve-password-12",
                                          "role": "admin"})
    assert refused.status_code == 403
    client.cookies.clear()
    login(client, "otto")
    token = csrf_of(client.get("/models").text)
    refused = client.post(f"/alerts/{alert.alert_id}/verdict", data={"csrf_token": token, "verdict": "legit"})
    assert refused.status_code == 403 and not labels.sent
    assert not audit_rows(console, "user.create")[3:]  # only the three test users


def test_a_form_without_its_csrf_token_is_refused(
    client: TestClient, console: Console, clock: ManualClock, labels: LabelRecorder
) -> None:
    alert = make_alert(1)
    store(console, [alert], clock)
    bare = client.post("/login", data={"username": "ana", "password": "analyst-password-1"}, follow_redirects=False)
    assert bare.status_code == 403 and "security token" in bare.text
    login(client, "ana")
    for data in ({"verdict": "fraud"}, {"verdict": "fraud", "csrf_token": "forged"}):
        response = client.post(f"/alerts/{alert.alert_id}/verdict", data=data)
        assert response.status_code == 403
    assert not labels.sent
    with session_factory(console.engine)() as db:
        assert db.scalars(select(VerdictRow)).first() is None
        assert db.get(AlertRow, alert.alert_id).status == "new"  # type: ignore[union-attr]


def test_alerts_of_one_card_form_one_case_and_duplicates_are_skipped(console: Console, clock: ManualClock) -> None:
    alerts = [make_alert(1, card="C1"), make_alert(2, card="C2"), make_alert(3, card="C1")]
    assert store(console, alerts, clock) == 3
    assert store(console, alerts[:2], clock) == 0  # re-read after a restart: stored once
    with session_factory(console.engine)() as db:
        rows = {r.transaction_id: r for r in db.scalars(select(AlertRow))}
        assert rows["T1"].case_id == rows["T3"].case_id != rows["T2"].case_id
        assert {c.card_id for c in db.scalars(select(Case))} == {"C1", "C2"}


def test_the_queue_is_newest_first_and_filters(client: TestClient, console: Console, clock: ManualClock) -> None:
    store(console, [
        make_alert(1, card="C1", merchant="M1", score=0.95, version="v1"),
        make_alert(2, card="C2", merchant="M2", score=0.60, version="v2"),
        make_alert(3, card="C3", merchant="M1", score=0.80, version="v2"),
    ], clock)
    login(client, "ana")

    def shown(query: str = "") -> list[str]:
        html = client.get(f"/alerts/rows?{query}").text
        return [part.split('"')[0] for part in html.split('data-transaction-id="')[1:]]

    assert shown() == ["T3", "T2", "T1"]
    assert shown("min_score=0.7") == ["T3", "T1"]
    assert shown("max_score=0.7") == ["T2"]
    assert shown("card=C2") == ["T2"]
    assert shown("merchant=M1") == ["T3", "T1"]
    assert shown("model_version=v2") == ["T3", "T2"]
    assert shown("status=new") == ["T3", "T2", "T1"] and shown("status=fraud") == []
    assert client.get("/alerts?min_score=abc").status_code == 400
    page = client.get("/alerts").text
    assert "T3" in page and 'id="queue-rows"' in page and "/static/console.js" in page


def test_a_verdict_goes_to_labels_updates_the_case_and_is_audited(
    client: TestClient, console: Console, clock: ManualClock, labels: LabelRecorder
) -> None:
    first, second = make_alert(1, card="C1", merchant="M7"), make_alert(2, card="C1")
    store(console, [first, second], clock)
    login(client, "ana")
    detail = client.get(f"/alerts/{first.alert_id}")
    assert detail.status_code == 200
    for text in ("amount 5000 is unusually high", "new_merchant", "v1", "0.900", "0.500"):
        assert text in detail.text
    clock.advance(60)
    response = client.post(f"/alerts/{first.alert_id}/verdict",
                           data={"csrf_token": csrf_of(detail.text), "verdict": "needs_review",
                                 "note": "call the bank"})
    assert response.status_code == 200 and "Verdict recorded" in response.text
    assert not labels.sent  # needs review is no label
    response = client.post(f"/alerts/{first.alert_id}/verdict",
                           data={"csrf_token": csrf_of(detail.text), "verdict": "fraud", "note": "customer confirmed"})
    assert response.status_code == 200
    ((label, note, analyst),) = labels.sent
    assert (label.transaction_id, label.user_id, label.merchant_id, label.is_fraud) == ("T1", "C1", "M7", True)
    assert label.transaction_timestamp == first.transaction.timestamp and label.source.value == "analyst"
    assert (note, analyst) == ("customer confirmed", "ana")
    with session_factory(console.engine)() as db:
        alert = db.get(AlertRow, first.alert_id)
        assert alert is not None and alert.status == "fraud"
        case = db.get(Case, alert.case_id)
        assert case is not None and case.status == "fraud"
        verdicts = list(db.scalars(select(VerdictRow).order_by(VerdictRow.id)))
        assert [(v.verdict, v.analyst, v.published) for v in verdicts] == [("needs_review", "ana", False),
                                                                          ("fraud", "ana", True)]
    actions = [(e.action, e.actor, e.target, e.source) for e in audit_rows(console) if e.actor == "ana"]
    target = f"alert:{first.alert_id}"
    assert actions[1:] == [
        ("verdict", "ana", target, "testclient"), ("alert.status", "ana", target, "testclient"),
        ("case.status", "ana", f"case:{alert.case_id}", "testclient"),
        ("verdict", "ana", target, "testclient"), ("alert.status", "ana", target, "testclient"),
        ("case.status", "ana", f"case:{alert.case_id}", "testclient"),
    ]
    verdict_detail = json.loads(audit_rows(console, "verdict")[-1].detail)
    assert verdict_detail == {"label_published": True, "note": "customer confirmed", "transaction_id": "T1",
                              "verdict": "fraud"}
    assert [json.loads(e.detail) for e in audit_rows(console, "case.status")] == [
        {"old": "open", "new": "needs_review"}, {"old": "needs_review", "new": "fraud"}
    ]


def test_a_case_verdict_labels_every_undecided_alert(
    client: TestClient, console: Console, clock: ManualClock, labels: LabelRecorder
) -> None:
    store(console, [make_alert(1, card="C9"), make_alert(2, card="C9")], clock)
    login(client, "ana")
    with session_factory(console.engine)() as db:
        case_id = db.scalars(select(Case.id)).one()
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200 and "2 alerts without one" in page.text
    client.post(f"/cases/{case_id}/verdict", data={"csrf_token": csrf_of(page.text), "verdict": "legit"})
    assert sorted((label.transaction_id, label.is_fraud) for label, _n, _a in labels.sent) == [("T1", False),
                                                                                              ("T2", False)]
    with session_factory(console.engine)() as db:
        assert db.get(Case, case_id).status == "legit"  # type: ignore[union-attr]
    # a new alert on the card after the case closed opens a new case
    store(console, [make_alert(3, card="C9")], clock)
    with session_factory(console.engine)() as db:
        assert len(list(db.scalars(select(Case)))) == 2


def test_case_status_rules() -> None:
    assert case_status(["new", "legit"]) == "open"
    assert case_status(["legit", "legit"]) == "legit"
    assert case_status(["needs_review", "legit"]) == "needs_review"
    assert case_status(["fraud", "new", "needs_review"]) == "fraud"


def test_an_admin_creates_a_user_audited(client: TestClient, console: Console) -> None:
    login(client, "ada")
    page = client.get("/users")
    created = client.post("/users", data={"csrf_token": csrf_of(page.text), "username": "bea",
                                          "password": "bea-password-123", "role": "analyst"})
    assert created.status_code == 200 and "bea" in created.text
    short = client.post("/users", data={"csrf_token": csrf_of(page.text), "username": "cy", "password": "short",
                                        "role": "analyst"})
    assert short.status_code == 400 and "shorter than 12" in short.text
    event = audit_rows(console, "user.create")[-1]
    assert (event.actor, event.target, json.loads(event.detail)) == ("ada", "bea", {"role": "analyst"})
    client.cookies.clear()
    assert login(client, "bea", "bea-password-123").headers["location"] == "/alerts"


def test_login_redirects_only_to_this_site() -> None:
    assert safe_next("/alerts?card=C1") == "/alerts?card=C1"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "alerts", None, ""):
        assert safe_next(bad) is None


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/login").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"


def test_the_session_secret_is_generated_once_private(tmp_path: Path) -> None:
    from console.web import session_secret

    settings = console_settings(make_test_settings(), tmp_path)
    first = session_secret(settings)
    assert first == session_secret(settings) and len(first) >= 40
    key = tmp_path / "state" / "console-session.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    configured = settings.with_overrides(console={"session_secret": "x" * 40})
    assert session_secret(configured) == "x" * 40


def test_the_migrations_build_exactly_the_models(console: Console) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from console.migrate import VERSION_TABLE, current_revision
    from console.schema import Base

    assert current_revision(console.engine) == "0002"
    with console.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []


def test_a_deactivated_user_loses_the_session_at_once_audited(console: Console) -> None:
    with TestClient(console.app) as analyst, TestClient(console.app) as admin:
        login(analyst, "ana")
        assert analyst.get("/alerts").status_code == 200
        login(admin, "ada")
        with session_factory(console.engine)() as db:
            ana_id = db.scalars(select(User.id).where(User.username == "ana")).one()
        page = admin.get("/users")
        assert admin.post(f"/users/{ana_id}/active", data={"csrf_token": csrf_of(page.text), "active": "0"}
                          ).status_code == 200
        assert analyst.get("/alerts", follow_redirects=False).status_code == 303  # the old cookie is no longer enough
        assert login(analyst, "ana").status_code == 401
    (event,) = audit_rows(console, "user.deactivate")
    assert (event.actor, event.target) == ("ada", "ana")
    assert json.loads(audit_rows(console, "login.failed")[-1].detail)["reason"] == "inactive"


def test_five_failed_logins_lock_the_user_name_for_fifteen_minutes(
    client: TestClient, console: Console, clock: ManualClock
) -> None:
    for _ in range(5):
        assert login(client, "ana", "guessing-passwords").status_code == 401
        clock.advance(10)
    locked = login(client, "ana")  # the right password, refused without being checked
    assert locked.status_code == 429 and "Too many failed logins" in locked.text
    assert login(client, "otto").status_code == 303  # other users are not locked
    clock.advance(15 * 60)
    assert login(client, "ana").status_code == 303
    reasons = [json.loads(e.detail)["reason"] for e in audit_rows(console, "login.failed")]
    assert reasons == ["wrong password"] * 5 + ["locked"]


def test_the_dashboard_counts_alerts_per_day_and_precision_from_verdicts(
    client: TestClient, console: Console, clock: ManualClock
) -> None:
    from datetime import timedelta

    from console.dashboard import figures

    first, second, third = make_alert(1, score=0.95), make_alert(2, card="C2", score=0.55), make_alert(3, card="C3")
    old = make_alert(4, card="C4", at=T0 - timedelta(days=30))
    store(console, [first, second, third, old], clock)
    clock.advance(3600)
    login(client, "ana")
    for alert, verdict in ((first, "fraud"), (second, "legit"), (third, "needs_review")):
        page = client.get(f"/alerts/{alert.alert_id}")
        client.post(f"/alerts/{alert.alert_id}/verdict", data={"csrf_token": csrf_of(page.text), "verdict": verdict})
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert '<b id="dash-alerts">3</b>' in page.text and '<b id="dash-precision">50.0%</b>' in page.text
    with session_factory(console.engine)() as db:
        rows = db.execute(select(AlertRow.produced_at, AlertRow.score, AlertRow.status)).all()
    result = figures(rows, clock.now(), 14)
    (today,) = [d for d in result.days if d.day == T0.date()]
    assert (today.alerts, today.fraud, today.legit, today.precision) == (3, 1, 1, 0.5)
    assert len(result.days) == 14 and sum(d.alerts for d in result.days) == 3  # the 30-day-old one is outside
    assert [n for _lo, _hi, n in result.score_bins][5] == 1 and [n for _lo, _hi, n in result.score_bins][9] == 3
