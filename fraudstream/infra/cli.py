"""Commands for the stack: up, down, status, topics."""

from __future__ import annotations

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import ExitCode


def up(ctx: typer.Context) -> None:
    """Start the embedded Kafka (KRaft) and redis-server if needed, wait until both answer, create topics."""
    from fraudstream.infra.stack import up as stack_up

    stack_up(settings_of(ctx), echo=typer.echo)


def down(ctx: typer.Context) -> None:
    """Stop the embedded processes this project started (by their pid files)."""
    from fraudstream.infra.stack import down as stack_down

    for line in stack_down(settings_of(ctx)).lines:
        typer.echo(line)


def status(ctx: typer.Context) -> None:
    """Say what runs and what answers; exit 69 when Kafka or Redis does not answer."""
    from fraudstream.infra.stack import status as stack_status

    report, healthy = stack_status(settings_of(ctx))
    for line in report.lines:
        typer.echo(line)
    if not healthy:
        raise typer.Exit(ExitCode.UNAVAILABLE)


def topics(
    ctx: typer.Context,
    partitions: int = typer.Option(None, min=1, help="Partitions for new topics (default: settings)."),
) -> None:
    """Create every fraudstream topic that is missing; existing topics are accepted."""
    from fraudstream.infra.topics import ensure_topics

    for topic, outcome in ensure_topics(settings_of(ctx), partitions=partitions).items():
        typer.echo(f"topic {topic}: {outcome}")


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("topics")(topics)
