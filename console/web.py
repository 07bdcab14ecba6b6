"""The console's web plumbing: app factory, sessions, authentication, role checks, CSRF, security headers.

Every route needs a logged-in, active user except the login form and the static files (CSS, JS). Sessions are
Starlette's signed cookies (itsdangerous, HttpOnly, SameSite=strict, Secure when console.cookie_secure); the
signing secret is console.session_secret or one generated into the state folder. Every POST checks the session's
CSRF token against the form's `csrf_token` field.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware

from console.cases import LabelPublisher
from console.roles import Permission, allowed
from console.schema import User
from fraudstream.clock import Clock
from fraudstream.errors import InfraError, InputError
from fraudstream.settings import Settings

if TYPE_CHECKING:
    from console.jobs import JobRunner

HERE = Path(__file__).parent
SESSION_COOKIE = "fraudstream_console"
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class ConsoleState:
    """What the routes need, built once by create_app."""

    settings: Settings
    sessions: sessionmaker[Session]
    clock: Clock
    publish_label: LabelPublisher
    #: The worker that runs training and backtests (None: this console starts none).
    jobs: JobRunner | None = None
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates")))


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    pass


class CsrfRefused(Exception):
    pass


def session_secret(settings: Settings) -> str:
    """console.session_secret, or a secret generated once (0600) into the embedded state folder."""
    if settings.console.session_secret is not None:
        return settings.console.session_secret.get_secret_value()
    path = settings.embedded.state_dir / "console-session.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def get_db(request: Request) -> Iterator[Session]:
    with state_of(request).sessions() as db:
        yield db


def client_source(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def current_user(request: Request, db: Session = Depends(get_db)) -> User:
    uid = request.session.get("uid")
    user = db.get(User, uid) if isinstance(uid, int) else None
    if user is None or not user.active:
        raise LoginRequired()
    return user


def require(permission: Permission) -> Callable[..., User]:
    """A dependency: the current user, or 403 when their role lacks `permission`."""

    def check(user: User = Depends(current_user)) -> User:
        if not allowed(user.role, permission):
            raise Forbidden()
        return user

    return check


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Every POST route depends on this: the form's csrf_token must equal the session's."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRefused()


def render(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    state = state_of(request)
    can = {p.value: user is not None and allowed(user.role, p) for p in Permission}
    return state.templates.TemplateResponse(
        request, name, {"user": user, "csrf_token": csrf_token(request), "can": can, **context},
        status_code=status_code,
    )


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", None, status_code=status, title=title, message=message)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        if request.method == "GET" and not request.url.path.endswith("/rows"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        return _error_page(request, 401, "Not logged in", "Log in first.")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        return _error_page(request, 403, "Forbidden", "Your role does not allow this page or action.")

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        return _error_page(request, 403, "Form refused", "The form's security token is missing or wrong: reload the "
                           "page and try again.")

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> Response:
        return _error_page(request, 400, "Cannot do that", str(exc))

    @app.exception_handler(InfraError)
    async def _infra(request: Request, exc: InfraError) -> Response:
        return _error_page(request, 503, "Unavailable", f"{exc}. Nothing was recorded; try again.")


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(target: str | None) -> str | None:
    """A redirect target after login: a path on this site only (no scheme, no host, no //)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    clock: Clock,
    publish_label: LabelPublisher,
    jobs: JobRunner | None = None,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    from contextlib import asynccontextmanager

    from console.pages import router
    from console.run_pages import router as run_router

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(title="fraudstream console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = ConsoleState(settings, sessions, clock, publish_label, jobs)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.console.session_max_age_s,
        same_site="strict",
        https_only=settings.console.cookie_secure,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _install_handlers(app)
    app.include_router(router)
    app.include_router(run_router)
    return app
