"""The `fraudstream` command line. Settings are built once here and passed down.

Each area registers its commands from its own module (`<package>/cli.py: register(app)`), so this file stays
small. Errors end a command the same way everywhere:

- a usage mistake (unknown command or option, missing argument, bad value) prints click's usage line, the error
  and a pointer to `--help`, exit code 2; an unknown command name suggests the closest ones;
- any other error goes through one boundary (`fraudstream.boundary.translate`): one line on stderr naming what
  failed, where and what to try, with the exit code of its class (fraudstream.errors.ExitCode);
- a traceback only with `--debug` or FRAUD_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from importlib import import_module
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from fraudstream import __version__
from fraudstream.boundary import translate
from fraudstream.errors import ExitCode, FraudstreamError
from fraudstream.logs import configure_logging
from fraudstream.settings import Settings, load_settings

PROG = "fraudstream"


class BoundaryGroup(TyperGroup):
    """The root group: every exception a command lets escape is translated once, here, with the settings at hand."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # click's own signals: usage errors, --help, explicit exit codes
        except KeyboardInterrupt:
            typer.echo(f"{PROG}: interrupted", err=True)
            raise
        except Exception as exc:  # the one place that turns anything into one line
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if ctx.params.get("debug") or (settings is not None and settings.log_level == "DEBUG"):
                traceback.print_exc()
            error = translate(exc, settings)
            if error is exc:
                raise
            raise error from exc


app = typer.Typer(
    name=PROG,
    cls=BoundaryGroup,
    help="Streaming fraud detection: Kafka in, Redis features, batched scoring, alerts out.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

#: Modules that add commands; each exposes register(app).
COMMAND_MODULES = (
    "fraudstream.infra.cli",
    "bankbus.cli",
    "training.cli",
    "streamer.cli",
    "backtest.cli",
    "api.cli",
    "models.cli",
    "console.cli",
)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings tree built once by the root callback."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        raise RuntimeError("the root callback did not build the settings; call commands through fraudstream.cli.app")
    return root.obj


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", is_eager=True, expose_value=False, callback=_show_version,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Log at DEBUG and show the traceback of any error."),
) -> None:
    settings = load_settings()
    configure_logging("DEBUG" if debug else settings.log_level, settings.log_format)
    ctx.obj = settings


@app.command("config")
def show_config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="The settings tree as JSON instead (for scripts)."),
) -> None:
    """Print every setting as NAME=value with the FRAUD_* environment name that sets it (secrets masked; `# set`
    marks the ones given, the rest are defaults)."""
    settings = settings_of(ctx)
    if as_json:
        typer.echo(json.dumps(settings.safe_summary(), indent=2, default=str))
        return
    for name, value, given in environment_lines(settings):
        typer.echo(f"{name}={value}" + ("  # set" if given else ""))


def environment_lines(settings: Settings) -> list[tuple[str, str, bool]]:
    """(FRAUD_* name, value as JSON, whether it was given) for every setting, secrets masked."""
    from pydantic import BaseModel

    lines = []
    for section, value in settings.safe_summary().items():
        node = getattr(settings, section)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for field, shown in items:
            env = f"FRAUD_{section.upper()}" + (f"__{field.upper()}" if field else "")
            given = (field in node.model_fields_set) if field and isinstance(node, BaseModel) else (
                section in settings.model_fields_set)
            lines.append((env, shown if isinstance(shown, str) else json.dumps(shown, default=str), given))
    return lines


@app.command("schemas")
def write_schemas(
    check: bool = typer.Option(False, help="Fail if the committed schema files differ."),
) -> None:
    """Write the JSON Schema of every wire contract to fraudstream/schemas/."""
    from fraudstream.errors import DataError
    from fraudstream.schema_files import check_schema_files, write_schema_files

    if check:
        stale = check_schema_files()
        if stale:
            raise DataError(f"schema files out of date: {', '.join(stale)}; run `fraudstream schemas`")
        typer.echo("schema files up to date")
    else:
        for path in write_schema_files():
            typer.echo(f"wrote {path}")


def _register_all() -> None:
    for name in COMMAND_MODULES:  # each is part of the package: a missing one is a bug, never skipped
        import_module(name).register(app)


_register_all()


def _show_usage_error(exc: typer.TyperException) -> None:
    """Click's display (usage line, pointer to --help, the error), without pydantic's 'Value error, ' prefix."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = message.removeprefix("Value error, ")
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        typer.echo(f"Error: {exc.format_message()}", err=True)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]) and return its exit code; never raises."""
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False)
    except FraudstreamError as exc:
        typer.echo(f"{PROG}: error: {exc}", err=True)
        return int(exc.exit_code)
    except typer.TyperException as exc:
        _show_usage_error(exc)
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    except typer.Abort:
        typer.echo(f"{PROG}: aborted", err=True)
        return int(ExitCode.ABORTED)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    return result if isinstance(result, int) else int(ExitCode.OK)


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()
