"""The console's pages: login, alert queue, alert and case detail with verdicts, users, audit trail, models."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console import audit
from console.cases import QueueFilter, give_verdict, queue
from console.passwords import verify_password
from console.roles import HOME, Permission, Role
from console.schema import ALERT_STATUSES, CASE_STATUSES, AlertRow, AuditEvent, Case, User, VerdictRow
from console.users import create_user
from console.web import (
    client_source,
    csrf_protect,
    current_user,
    get_db,
    render,
    require,
    safe_next,
    state_of,
)
from fraudstream.contracts import Alert
from fraudstream.errors import InputError

router = APIRouter()
CSRF = [Depends(csrf_protect)]
#: After this many failed logins of one user name within LOCKOUT (since its last login), further attempts are refused
#: without checking the password until LOCKOUT has passed since the last of them.
LOCKOUT_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


def _locked_out(db: Session, username: str, now: datetime) -> bool:
    """Counted from the audit trail (so every console replica agrees): failures, not refusals while locked."""
    last_login = db.scalar(select(func.max(AuditEvent.at)).where(AuditEvent.actor == username,
                                                                 AuditEvent.action == "login"))
    since = now - LOCKOUT if last_login is None else max(now - LOCKOUT, last_login)
    failures = db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.actor == username, AuditEvent.action == "login.failed", AuditEvent.at > since,
        AuditEvent.detail.not_like('%"reason": "locked"%')))
    return int(failures or 0) >= LOCKOUT_FAILURES


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# ------------------------------------------------------------------ login
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", None, next=safe_next(next) or "")


@router.post("/login", dependencies=CSRF)
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
    db: Session = Depends(get_db),
) -> Response:
    state = state_of(request)
    now, source = state.clock.now(), client_source(request)
    if _locked_out(db, username[:64], now):
        audit.record(db, at=now, actor=username[:64] or "-", action="login.failed", source=source, reason="locked")
        db.commit()
        return render(request, "login.html", None, status_code=429, next=safe_next(next) or "",
                      error=f"Too many failed logins for this user: try again in {LOCKOUT.seconds // 60} minutes, "
                      "or ask an admin.")
    user = db.scalars(select(User).where(User.username == username)).first()
    ok = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not ok or not user.active:
        reason = "unknown user" if user is None else ("inactive" if ok else "wrong password")
        audit.record(db, at=now, actor=username[:64] or "-", action="login.failed", source=source, reason=reason)
        db.commit()
        return render(request, "login.html", None, status_code=401, error="Wrong user name or password.",
                      next=safe_next(next) or "")
    request.session.clear()  # a new session on login: nothing carried over from before (fixation)
    request.session.update({"uid": user.id, "csrf": secrets.token_urlsafe(32)})
    audit.record(db, at=now, actor=user.username, action="login", source=source, role=user.role)
    db.commit()
    return _redirect(safe_next(next) or HOME[Role(user.role)])


@router.post("/logout", dependencies=CSRF)
def logout(request: Request, user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    audit.record(db, at=state_of(request).clock.now(), actor=user.username, action="logout",
                 source=client_source(request))
    db.commit()
    request.session.clear()
    return _redirect("/login")


@router.get("/")
def home(user: User = Depends(current_user)) -> Response:
    return _redirect(HOME[Role(user.role)])


# ------------------------------------------------------------------ queue
def _filters(request: Request) -> QueueFilter:
    params = {k: v.strip() for k, v in request.query_params.items() if v.strip()}

    def score(name: str) -> float | None:
        if name not in params:
            return None
        try:
            value = float(params[name])
        except ValueError:
            raise InputError(f"{name.replace('_', ' ')} must be a number between 0 and 1") from None
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{name.replace('_', ' ')} must be between 0 and 1")
        return value

    return QueueFilter(
        min_score=score("min_score"), max_score=score("max_score"), card=params.get("card"),
        merchant=params.get("merchant"), model_version=params.get("model_version"), status=params.get("status"),
    )


@router.get("/alerts", response_class=HTMLResponse)
def alert_queue(
    request: Request, user: User = Depends(require(Permission.view_alerts)), db: Session = Depends(get_db)
) -> Response:
    filters = _filters(request)
    versions = list(db.scalars(select(AlertRow.model_version).distinct().order_by(AlertRow.model_version)))
    return render(request, "queue.html", user, alerts=queue(db, filters), filters=filters, statuses=ALERT_STATUSES,
                  versions=versions, query=request.url.query)


@router.get("/alerts/rows", response_class=HTMLResponse)
def alert_rows(
    request: Request, user: User = Depends(require(Permission.view_alerts)), db: Session = Depends(get_db)
) -> Response:
    """The queue's table body alone, fetched by console.js every few seconds (live updates)."""
    return render(request, "_queue_rows.html", user, alerts=queue(db, _filters(request)))


def _alert_or_404(db: Session, alert_id: str) -> AlertRow:
    alert = db.get(AlertRow, alert_id)
    if alert is None:
        raise InputError(f"no alert {alert_id!r}")
    return alert


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_detail(
    alert_id: str, request: Request, user: User = Depends(require(Permission.view_alerts)),
    db: Session = Depends(get_db),
) -> Response:
    alert = _alert_or_404(db, alert_id)
    record = Alert.model_validate_json(alert.payload)
    recent = list(db.scalars(
        select(AlertRow).where(AlertRow.card_id == alert.card_id).order_by(AlertRow.transaction_time.desc()).limit(20)
    ))
    verdicts = list(db.scalars(select(VerdictRow).where(VerdictRow.alert_id == alert_id).order_by(VerdictRow.id)))
    return render(request, "alert.html", user, alert=alert, record=record, case=db.get(Case, alert.case_id),
                  recent=recent, verdicts=verdicts, message=request.query_params.get("done"),
                  scores=_recent_scores(request, db, alert.card_id), current_txn=alert.transaction_id)


def _recent_scores(request: Request, db: Session, card_id: str) -> list[Any]:
    """The card's recent transactions and their scores, as the scores consumer keeps them (newest first)."""
    from console.score_ingest import recent_scores

    return recent_scores(db, card_id, state_of(request).settings.console.scores_per_card)


@router.post("/alerts/{alert_id}/verdict", dependencies=CSRF)
def alert_verdict(
    alert_id: str, request: Request, verdict: str = Form(...), note: str = Form(""),
    user: User = Depends(require(Permission.give_verdict)), db: Session = Depends(get_db),
) -> Response:
    alert = _alert_or_404(db, alert_id)
    _verdict(request, db, user, [alert], verdict, note)
    return _redirect(f"/alerts/{alert_id}?done={verdict}")


def _verdict(request: Request, db: Session, user: User, alerts: list[AlertRow], verdict: str, note: str) -> None:
    state = state_of(request)
    try:
        for alert in alerts:
            give_verdict(db, alert, verdict, note=note, analyst=user.username, source=client_source(request),
                         settings=state.settings, clock=state.clock, publish=state.publish_label)
        db.commit()
    except BaseException:
        db.rollback()
        raise


# ------------------------------------------------------------------ cases
@router.get("/cases", response_class=HTMLResponse)
def case_list(
    request: Request, status: str = "", user: User = Depends(require(Permission.view_alerts)),
    db: Session = Depends(get_db),
) -> Response:
    query = select(Case).order_by(Case.updated_at.desc()).limit(200)
    if status:
        if status not in CASE_STATUSES:
            raise InputError(f"status must be one of {', '.join(CASE_STATUSES)}")
        query = query.where(Case.status == status)
    cases = list(db.scalars(query))
    counts: dict[int, int] = {}
    for case_id in db.scalars(select(AlertRow.case_id).where(AlertRow.case_id.in_([c.id for c in cases]))):
        counts[case_id] = counts.get(case_id, 0) + 1
    return render(request, "cases.html", user, cases=cases, counts=counts, statuses=CASE_STATUSES, status=status)


def _case_or_404(db: Session, case_id: int) -> Case:
    case = db.get(Case, case_id)
    if case is None:
        raise InputError(f"no case {case_id}")
    return case


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_detail(
    case_id: int, request: Request, user: User = Depends(require(Permission.view_alerts)),
    db: Session = Depends(get_db),
) -> Response:
    case = _case_or_404(db, case_id)
    alerts = list(db.scalars(select(AlertRow).where(AlertRow.case_id == case_id)
                             .order_by(AlertRow.transaction_time.desc())))
    verdicts = list(db.scalars(select(VerdictRow).where(VerdictRow.case_id == case_id).order_by(VerdictRow.id)))
    return render(request, "case.html", user, case=case, alerts=alerts, verdicts=verdicts,
                  undecided=sum(a.status in ("new", "needs_review") for a in alerts),
                  scores=_recent_scores(request, db, case.card_id), current_txn=None)


@router.post("/cases/{case_id}/verdict", dependencies=CSRF)
def case_verdict(
    case_id: int, request: Request, verdict: str = Form(...), note: str = Form(""),
    user: User = Depends(require(Permission.give_verdict)), db: Session = Depends(get_db),
) -> Response:
    """One verdict for every alert of the case that has none yet (or is under review)."""
    _case_or_404(db, case_id)
    alerts = list(db.scalars(select(AlertRow).where(
        AlertRow.case_id == case_id, AlertRow.status.in_(("new", "needs_review")))))
    if not alerts:
        raise InputError(f"case {case_id} has no alert without a verdict")
    _verdict(request, db, user, alerts, verdict, note)
    return _redirect(f"/cases/{case_id}")


# ------------------------------------------------------------------ dashboard (every role: figures, no case data)
DASHBOARD_DAYS = 14


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request, user: User = Depends(require(Permission.view_dashboard)), db: Session = Depends(get_db)
) -> Response:
    """Alerts per day, precision from the verdicts, the alert score distribution, the model in service."""
    from console.dashboard import figures

    now = state_of(request).clock.now()
    since = now - timedelta(days=DASHBOARD_DAYS)
    rows = db.execute(select(AlertRow.produced_at, AlertRow.score, AlertRow.status)
                      .where(AlertRow.produced_at >= since)).all()
    open_cases = db.scalar(select(func.count()).select_from(Case).where(Case.status.in_(("open", "needs_review"))))
    registry = _registry(request)
    return render(request, "dashboard.html", user, figures=figures(rows, now, DASHBOARD_DAYS),
                  open_cases=int(open_cases or 0), current=registry.current_version(), days=DASHBOARD_DAYS)


# ------------------------------------------------------------------ users and audit (admin)
@router.get("/users", response_class=HTMLResponse)
def user_list(
    request: Request, user: User = Depends(require(Permission.manage_users)), db: Session = Depends(get_db)
) -> Response:
    users = list(db.scalars(select(User).order_by(User.username)))
    return render(request, "users.html", user, users=users, roles=[r.value for r in Role],
                  message=request.query_params.get("done"))


@router.post("/users", dependencies=CSRF)
def user_create(
    request: Request, username: str = Form(...), password: str = Form(...), role: str = Form(...),
    user: User = Depends(require(Permission.manage_users)), db: Session = Depends(get_db),
) -> Response:
    try:
        chosen = Role(role)
    except ValueError:
        raise InputError(f"role must be one of {', '.join(r.value for r in Role)}") from None
    create_user(db, username, password, chosen, actor=user.username, source=client_source(request),
                at=state_of(request).clock.now())
    db.commit()
    return _redirect(f"/users?done=created+{username}")


@router.post("/users/{user_id}/active", dependencies=CSRF)
def user_active(
    user_id: int, request: Request, active: str = Form(...),
    user: User = Depends(require(Permission.manage_users)), db: Session = Depends(get_db),
) -> Response:
    target = db.get(User, user_id)
    if target is None:
        raise InputError(f"no user {user_id}")
    if target.id == user.id:
        raise InputError("you cannot deactivate yourself")
    new = active == "1"
    if target.active != new:
        audit.record(db, at=state_of(request).clock.now(), actor=user.username,
                     action="user.activate" if new else "user.deactivate", target=target.username,
                     source=client_source(request))
        target.active = new
        db.commit()
    return _redirect("/users")


@router.get("/audit", response_class=HTMLResponse)
def audit_trail(
    request: Request, actor: str = "", action: str = "",
    user: User = Depends(require(Permission.view_audit)), db: Session = Depends(get_db),
) -> Response:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(500)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    events = [(event, json.loads(event.detail)) for event in db.scalars(query)]
    return render(request, "audit.html", user, events=events, actor=actor, action=action)


# ------------------------------------------------------------------ models (ops change, admin reads)
def _registry(request: Request) -> Any:
    from models.registry import ModelRegistry

    return ModelRegistry.from_settings(state_of(request).settings)


@router.get("/models", response_class=HTMLResponse)
def model_list(request: Request, user: User = Depends(require(Permission.view_models))) -> Response:
    from models.audit import read_audit

    registry = _registry(request)
    rows: list[dict[str, Any]] = []
    for version in reversed(registry.versions()):
        manifest = registry.manifest(version)
        rows.append({"version": version, "created_at": manifest.get("created_at"),
                     "metrics": manifest.get("metrics", {}), "data_range": manifest.get("data_range"),
                     "scorers": manifest.get("scorers", []), "holdout_id": manifest.get("holdout_id")})
    history = list(read_audit(registry.root))[-20:][::-1]
    return render(request, "models.html", user, rows=rows, current=registry.current_version(),
                  root=str(registry.root), history=history, message=request.query_params.get("done"))


@router.get("/models/compare", response_class=HTMLResponse)
def model_compare(
    request: Request, a: str = "", b: str = "", user: User = Depends(require(Permission.view_models))
) -> Response:
    """Two versions side by side: every metric, the thresholds, data range, holdout, scorers, features."""
    registry = _registry(request)
    known = registry.versions()
    for version in (a, b):
        if version not in known:
            raise InputError(f"no model version {version!r} in {registry.root}; pick two from the models page")
    left, right = registry.manifest(a), registry.manifest(b)

    def flat(manifest: dict[str, Any]) -> dict[str, Any]:
        out = {f"metrics.{k}": v for k, v in manifest.get("metrics", {}).items() if not isinstance(v, dict | list)}
        out |= {f"threshold.{k}": v for k, v in manifest.get("thresholds", {}).items()}
        for key in ("created_at", "holdout_id", "data_range", "scorers", "feature_spec_hash", "seed"):
            out[key] = manifest.get(key)
        out["features"] = len(manifest.get("feature_names", []))
        return out

    fa, fb = flat(left), flat(right)
    rows = [(key, fa.get(key), fb.get(key)) for key in sorted(set(fa) | set(fb))]
    return render(request, "model_compare.html", user, a=a, b=b, rows=rows, current=registry.current_version())


@router.get("/models/{version}", response_class=HTMLResponse)
def model_detail(version: str, request: Request, user: User = Depends(require(Permission.view_models))) -> Response:
    """One version's manifest as the registry holds it, and the registry's audit records about it."""
    from models.audit import read_audit

    registry = _registry(request)
    if version not in registry.versions():
        raise InputError(f"no model version {version!r} in {registry.root}")
    manifest = registry.manifest(version)
    history = [r for r in read_audit(registry.root) if version in (r.version, r.previous)][::-1]
    return render(request, "model.html", user, version=version, current=registry.current_version(),
                  manifest=json.dumps(manifest, indent=2, sort_keys=True, default=str), history=history)


def _move_current(request: Request, db: Session, user: User, target: str, *, force: bool, action: str) -> str | None:
    """Make `target` current through the registry (which checks it and appends its own audit line), audited here
    too with where the request came from. Returns the version it replaced."""
    from fraudstream.errors import ModelError
    from models.registry import running_feature_spec_hash

    registry = _registry(request)
    if target not in registry.versions():
        raise InputError(f"no model version {target!r} in {registry.root}")
    before = registry.current_version()
    try:
        manifest = registry.verify(target)  # signature and every file's hash
        if manifest.get("feature_spec_hash") != running_feature_spec_hash():
            raise InputError(f"model version {target} was trained for another feature spec: streamers could not "
                             "load it; retrain with this code")
        audit.record(db, at=state_of(request).clock.now(), actor=user.username, action=f"model.{action}",
                     target=f"model:{target}", source=client_source(request), old=before, new=target, forced=force)
        db.flush()  # the audit row is written before the registry changes, committed once it has
        registry.promote(target, force=force, actor=user.username, action=action)
    except ModelError as exc:
        db.rollback()
        raise InputError(str(exc)) from None
    db.commit()
    return before  # type: ignore[no-any-return]


@router.post("/models/{version}/promote", dependencies=CSRF)
def model_promote(
    version: str, request: Request, force: str = Form(""),
    user: User = Depends(require(Permission.change_models)), db: Session = Depends(get_db),
) -> Response:
    """Make a version current: not worse than the champion on the same holdout unless forced."""
    _move_current(request, db, user, version, force=force == "1", action="promote")
    return _redirect(f"/models?done=promoted+{version}")


@router.post("/models/rollback", dependencies=CSRF)
def model_rollback(
    request: Request, user: User = Depends(require(Permission.change_models)), db: Session = Depends(get_db)
) -> Response:
    """Make the previous current version (as the registry's audit trail records it) current again."""
    from models.audit import current_history

    registry = _registry(request)
    history = current_history(registry.root)
    current = registry.current_version()
    if current is None or not history or history[-1] != current or len(history) < 2:
        raise InputError("the registry's audit trail records no earlier current version to roll back to; "
                         "make one current by name instead")
    target = history[-2]
    _move_current(request, db, user, target, force=True, action="rollback")
    return _redirect(f"/models?done=rolled+back+to+{target}")
