"""Commands: `fraudstream stream`, `fraudstream alerts tail`, `fraudstream label TRANSACTION_ID fraud|legit`."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

import typer

from fraudstream.cli import settings_of
from fraudstream.contracts import LabelSource
from fraudstream.errors import InputError, ModelUnavailable
from fraudstream.settings import Settings

alerts_app = typer.Typer(help="Read alerts.", no_args_is_help=True)


class Engine(StrEnum):
    kafka = "kafka"
    faust = "faust"


class Verdict(StrEnum):
    fraud = "fraud"
    legit = "legit"


def stream(
    ctx: typer.Context,
    engine: Engine | None = typer.Option(None, help="kafka (exactly once) or faust; default: streamer.engine."),
    max_events: int | None = typer.Option(None, min=1, help="Stop after this many records."),
    idle_exit: float | None = typer.Option(None, min=0.0, help="Stop after this many seconds without records."),
    wait_timeout: float | None = typer.Option(
        None, min=0.0, help="At start, wait at most this many seconds for Kafka and Redis to answer "
        "(default: --idle-exit when given, else as long as it takes)."
    ),
    instance_id: str | None = typer.Option(
        None, help="Stable id of this worker (transactional id suffix); distinct per worker. Default: hostname."
    ),
) -> None:
    """Run the stream processor: transactions + labels in; alerts, scores, dead letters out."""
    from fraudstream.infra.wait import RetrySchedule, dependencies, wait_for_dependencies

    settings = settings_of(ctx)
    chosen = engine.value if engine is not None else settings.streamer.engine
    _require_current_model(settings)
    bound, bound_name = (wait_timeout, "--wait-timeout") if wait_timeout is not None else (idle_exit, "--idle-exit")
    wait_for_dependencies(
        dependencies(settings),
        bound_s=bound,
        bound_name=bound_name if bound is not None else "--wait-timeout",
        schedule=RetrySchedule(max_s=settings.streamer.redis_retry_max_s),
    )
    if chosen == "faust":
        from streamer.faust_engine import run_faust_engine  # imported only when asked: faust is heavy

        result = run_faust_engine(settings, max_events=max_events, idle_exit_s=idle_exit)
    else:
        from streamer.run import run_kafka_engine

        result = run_kafka_engine(settings, max_events=max_events, idle_exit_s=idle_exit, instance_id=instance_id)
    typer.echo(json.dumps(result))


def _require_current_model(settings: Settings) -> None:
    """A worker cannot score without a current model: say so before waiting for anything."""
    from models.registry import ModelRegistry

    path = settings.registry.path
    if ModelRegistry(path).current_version() is None:
        raise ModelUnavailable(
            f"the model registry {path} has no current model; run `fraudstream train` first, or point "
            "FRAUD_REGISTRY__PATH at the registry the trainer publishes to"
        )


@alerts_app.command("tail")
def tail(
    ctx: typer.Context,
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Keep waiting for new alerts."),
    min_score: float = typer.Option(0.0, min=0.0, max=1.0, help="Only alerts with at least this score."),
    user: str | None = typer.Option(None, help="Only this user's alerts."),
    from_beginning: bool = typer.Option(False, help="Start at the oldest alert (default with --no-follow)."),
    limit: int | None = typer.Option(None, min=1, help="Stop after this many alerts."),
) -> None:
    """Print alerts as readable lines (read_committed; commits nothing to any consumer group)."""
    from streamer.alert_reader import format_alert, read_alerts

    settings = settings_of(ctx)
    shown = 0
    for alert in read_alerts(settings, follow=follow, from_beginning=from_beginning or not follow):
        if alert.score < min_score or (user is not None and alert.transaction.user_id != user):
            continue
        typer.echo(format_alert(alert))
        shown += 1
        if limit is not None and shown >= limit:
            break


def label(
    ctx: typer.Context,
    transaction_id: str = typer.Argument(..., metavar="TRANSACTION_ID", help="The transaction the verdict is about."),
    verdict: Verdict = typer.Argument(..., metavar="VERDICT", help="fraud or legit."),
    source: LabelSource = typer.Option(LabelSource.analyst, help="Who says so."),
    note: str | None = typer.Option(None, help="Free text, sent as a Kafka header (not part of the Label)."),
    user: str | None = typer.Option(None, help="The user id, when the transaction has no alert."),
    merchant: str | None = typer.Option(None, help="The merchant id, when the transaction has no alert."),
    at: datetime | None = typer.Option(None, help="The transaction time (ISO, UTC), when it has no alert."),
) -> None:
    """Publish a verdict to the labels topic (merchant and time filled from the transaction's alert if found)."""
    from fraudstream.clock import SystemClock
    from streamer.labelling import build_label, publish_label

    settings = settings_of(ctx)
    if note is not None and len(note) > 2000:
        raise InputError("the note is longer than 2,000 characters; shorten it")
    record = build_label(
        settings,
        transaction_id,
        is_fraud=verdict == Verdict.fraud,
        source=source,
        user=user,
        merchant=merchant,
        at=at,
        clock=SystemClock(),
    )
    publish_label(settings, record, note=note)
    typer.echo(f"published {verdict.value} for {transaction_id} (user {record.user_id}) to {settings.topics.labels}")


def register(app: typer.Typer) -> None:
    app.command("stream")(stream)
    app.command("label")(label)
    app.add_typer(alerts_app, name="alerts")
