"""Commands: `fraudstream console` (serve), `fraudstream console create-user`, `fraudstream console migrate`."""

from __future__ import annotations

import sys

import typer

from console.roles import Role
from fraudstream.cli import settings_of
from fraudstream.errors import InfraError, InputError

console_app = typer.Typer(
    help="The security team's web console (alert queue, cases, verdicts, users, audit trail).",
    invoke_without_command=True,
)


@console_app.callback(invoke_without_command=True)
def console(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Listen address (default: console.host)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Listen port (default: console.port)."),
    consume: bool = typer.Option(True, "--consume/--no-consume", help="Store alerts from the alerts topic."),
) -> None:
    """Serve the console (the database is migrated first); `create-user` makes the first admin."""
    if ctx.invoked_subcommand is not None:
        return
    from console.db import describe
    from console.server import serve

    settings, engine, _revision = _migrated_engine(ctx)  # a database that cannot be reached: one line, exit 69
    engine.dispose()
    host = host or settings.console.host
    port = port or settings.console.port
    typer.echo(f"console on http://{host}:{port}/ (database {describe(settings)}, alerts from "
               f"{settings.topics.alerts} at {settings.bootstrap_servers})", err=True)
    try:
        serve(settings, host=host, port=port, consume=consume)
    except OSError as exc:
        raise InfraError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None


def _migrated_engine(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from console.db import describe, make_engine
    from console.migrate import upgrade

    settings = settings_of(ctx)
    engine = make_engine(settings)
    try:
        revision = upgrade(engine)
    except OperationalError as exc:
        raise InfraError(
            f"cannot migrate the console database {describe(settings)}: {str(exc.orig).strip().splitlines()[0]}; "
            "check FRAUD_DATABASE__URL"
        ) from None
    return settings, engine, revision


@console_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Bring the console's database schema up to date (Alembic)."""
    from console.db import describe

    settings, engine, revision = _migrated_engine(ctx)
    engine.dispose()
    typer.echo(f"console database {describe(settings)} at revision {revision}")


@console_app.command("create-user")
def create_user_command(
    ctx: typer.Context,
    username: str = typer.Argument(..., metavar="USERNAME", help="The login name."),
    role: Role = typer.Option(Role.admin, help="analyst (alerts, verdicts), ops (models) or admin (users)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create a console user (the first admin, typically); the password is asked twice unless --password-stdin."""
    from console.audit import cli_source
    from console.db import session_factory
    from console.users import create_user
    from fraudstream.clock import SystemClock

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("no password given; type one or pipe it with --password-stdin")
    _settings, engine, _revision = _migrated_engine(ctx)
    try:
        with session_factory(engine).begin() as db:
            create_user(db, username, password, role, actor="cli", source=cli_source(), at=SystemClock().now())
    finally:
        engine.dispose()
    typer.echo(f"created {role.value} {username}")


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")
