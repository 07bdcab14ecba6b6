"""The `fraudstream` command line. Settings are built once here and passed down.

Each area registers its commands from its own module (`<package>/cli.py: register(app)`), so this
file stays small. Any FraudstreamError ends the command with one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module

import typer

from fraudstream.errors import FraudstreamError
from fraudstream.logs import configure_logging
from fraudstream.settings import Settings, load_settings

app = typer.Typer(
    name="fraudstream",
    help="Streaming fraud detection: Kafka in, Redis features, batched scoring, alerts out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules that add commands; each exposes register(app).
COMMAND_MODULES = (
    "fraudstream.infra.cli",
    "bankbus.cli",
    "training.cli",
    "streamer.cli",
    "backtest.cli",
    "bench.cli",
)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings tree built once by the root callback."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = load_settings()
    return root.obj


@app.callback()
def _root(ctx: typer.Context) -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (secrets masked) and the environment names that set them."""
    typer.echo(json.dumps(settings_of(ctx).safe_summary(), indent=2, default=str))


@app.command("schemas")
def write_schemas(
    check: bool = typer.Option(False, help="Fail if the committed schema files differ."),
) -> None:
    """Write the JSON Schema of every wire contract to fraudstream/schemas/."""
    from fraudstream.schema_files import check_schema_files, write_schema_files

    if check:
        stale = check_schema_files()
        if stale:
            raise FraudstreamError(f"schema files out of date: {', '.join(stale)}; run `fraudstream schemas`")
        typer.echo("schema files up to date")
    else:
        for path in write_schema_files():
            typer.echo(f"wrote {path}")


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except FraudstreamError as exc:
        typer.echo(f"fraudstream: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("fraudstream: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
