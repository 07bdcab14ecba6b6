"""Commands: `fraudstream api serve|create-key|revoke-key|keys`."""

from __future__ import annotations

import getpass
import logging

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import ModelUnavailable
from fraudstream.settings import Settings

api_app = typer.Typer(help="The scoring API: serve it, manage its keys.", no_args_is_help=True)
log = logging.getLogger(__name__)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME: say so rather than guess
        return "unknown"


@api_app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Listen address (default: api.host)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Listen port (default: api.port)."),
) -> None:
    """Serve POST /v1/score, GET /v1/health and /v1/ready (OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    from api.app import create_app
    from api.keys import KeyFile
    from api.server import build_service

    settings = settings_of(ctx)
    _require_current_model(settings)
    keys = KeyFile(settings.api_keys_file)
    if not any(k.active for k in keys.keys()):
        log.warning("no active API key in %s: every /v1/score call is refused until `fraudstream api create-key`",
                    settings.api_keys_file)
    service, close = build_service(settings)
    try:
        app = create_app(service, keys, max_body_bytes=settings.api.max_body_bytes)
        where = f"http://{host or settings.api.host}:{port or settings.api.port}"
        typer.echo(f"scoring API on {where} (POST /v1/score, OpenAPI at {where}/docs)", err=True)
        settle_heap()
        # uvloop and httptools (pinned runtime dependencies): the C event loop and HTTP parser; no access log
        uvicorn.run(app, host=host or settings.api.host, port=port or settings.api.port, loop="uvloop",
                    http="httptools", access_log=False, log_level="warning", lifespan="off")
    finally:
        close()


def settle_heap() -> None:
    """After start-up: what was built so far (the model, the compiled folds, FastAPI) is moved out of the
    collector's sight (gc.freeze), and the youngest generation is collected every 20,000 allocations instead of
    700, so a request's short-lived objects are rarely followed by a pause that scans the heap."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _require_current_model(settings: Settings) -> None:
    """No serving without a current, trusted model: said before Kafka or Redis is asked anything."""
    from models.registry import ModelRegistry

    path = settings.registry.path
    registry = ModelRegistry.from_settings(settings)
    current = registry.current_version()
    if current is None:
        raise ModelUnavailable(
            f"the model registry {path} has no current model; run `fraudstream train` first, or point "
            "FRAUD_REGISTRY__PATH at the registry the trainer publishes to"
        )
    registry.verify(current)  # signature and hashes, before anything else starts (as `fraudstream stream`)


@api_app.command("create-key")
def create_key(
    ctx: typer.Context,
    name: str = typer.Option(..., help="Who or what uses the key (unique among active keys)."),
    actor: str | None = typer.Option(None, help="Who creates it, for the record (default: $USER)."),
) -> None:
    """Create an API key and print it once (only its sha256 is kept)."""
    from api.keys import KeyFile

    settings = settings_of(ctx)
    key, record = KeyFile(settings.api_keys_file).create(name, _actor(actor))
    typer.echo(key)
    typer.echo(f"created API key {record.name} (id {record.key_id}) in {settings.api_keys_file}; it is shown only "
               "now: store it in the caller's secret store", err=True)


@api_app.command("revoke-key")
def revoke_key(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME_OR_ID", help="The key's name or id."),
    actor: str | None = typer.Option(None, help="Who revokes it, for the record (default: $USER)."),
) -> None:
    """Revoke an API key: a running server refuses it from its next request on."""
    from api.keys import KeyFile

    settings = settings_of(ctx)
    record = KeyFile(settings.api_keys_file).revoke(name, _actor(actor))
    typer.echo(f"revoked API key {record.name} (id {record.key_id})")


@api_app.command("keys")
def list_keys(ctx: typer.Context) -> None:
    """List the API keys (names, ids, dates; never a key)."""
    from api.keys import KeyFile

    settings = settings_of(ctx)
    keys = KeyFile(settings.api_keys_file).keys()
    if not keys:
        typer.echo(f"no API keys in {settings.api_keys_file}; create one with `fraudstream api create-key --name N`")
        return
    for k in keys:
        state = f"revoked {k.revoked_at} by {k.revoked_by}" if k.revoked_at else "active"
        typer.echo(f"{k.key_id}  {k.name:<24} created {k.created_at} by {k.created_by}  {state}")


def register(app: typer.Typer) -> None:
    app.add_typer(api_app, name="api")
