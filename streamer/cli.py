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
dlq_app = typer.Typer(help="Read the dead-letter topic (records refused, with the reason).", no_args_is_help=True)
late_app = typer.Typer(help="Read the late topic (transactions too old to score, with the reason).",
                       no_args_is_help=True)


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
    start_from: str | None = typer.Option(
        None, "--from", metavar="earliest|latest|TIME",
        help="Where a NEW consumer group starts: latest (default: only what is published from now on), earliest "
        "(all history in the topic, re-emitting its alerts; warns first) or an ISO time (Kafka timestamps). A group "
        "with committed offsets resumes from them.",
    ),
) -> None:
    """Run the stream processor: transactions + labels in; alerts, scores, dead letters out."""
    from fraudstream.infra.topics import ensure_topics
    from fraudstream.infra.wait import RetrySchedule, dependencies, wait_for_dependencies
    from streamer.start_position import parse_start, place_groups

    settings = settings_of(ctx)
    chosen = engine.value if engine is not None else settings.streamer.engine
    start = parse_start(start_from) if start_from is not None else None
    _require_current_model(settings)
    if settings.streamer.device == "cuda":  # no usable GPU: say so now, not after waiting for Kafka and Redis
        from models.device import probe_cuda, resolve_device

        resolve_device("cuda", probe_cuda)
    bound, bound_name = (wait_timeout, "--wait-timeout") if wait_timeout is not None else (idle_exit, "--idle-exit")
    wait_for_dependencies(
        dependencies(settings),
        bound_s=bound,
        bound_name=bound_name if bound is not None else "--wait-timeout",
        schedule=RetrySchedule(max_s=settings.streamer.redis_retry_max_s),
    )
    ensure_topics(settings)
    place_groups(settings, chosen, start)
    if chosen == "faust":
        from streamer.faust_engine import run_faust_engine  # imported only when asked: faust is heavy

        result = run_faust_engine(settings, max_events=max_events, idle_exit_s=idle_exit)
    else:
        from streamer.run import run_kafka_engine

        result = run_kafka_engine(settings, max_events=max_events, idle_exit_s=idle_exit, instance_id=instance_id)
    typer.echo(json.dumps(result))


def _require_current_model(settings: Settings) -> None:
    """A worker cannot score without a current, trusted model: say so before waiting for anything (the manifest's
    signature and every file's hash are checked here, before any file is parsed or unpickled)."""
    from models.registry import ModelRegistry

    path = settings.registry.path
    registry = ModelRegistry.from_settings(settings)
    current = registry.current_version()
    if current is None:
        raise ModelUnavailable(
            f"the model registry {path} has no current model; run `fraudstream train` first, or point "
            "FRAUD_REGISTRY__PATH at the registry the trainer publishes to"
        )
    registry.verify(current)


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


def _tail_topic(ctx: typer.Context, which: str, follow: bool, from_beginning: bool, limit: int | None) -> None:
    from streamer.topic_tail import format_dead_letter, format_late, read_topic

    settings = settings_of(ctx)
    topic = settings.topics.dlq if which == "dlq" else settings.topics.late
    line = format_dead_letter if which == "dlq" else format_late
    shown = 0
    for record in read_topic(settings, topic, follow=follow, from_beginning=from_beginning or not follow):
        typer.echo(line(record))
        shown += 1
        if limit is not None and shown >= limit:
            break
    if not follow:
        typer.echo(f"{shown:,} records in {topic}", err=True)


FOLLOW = typer.Option(False, "--follow/--no-follow", help="Keep waiting for new records (default: print and stop).")
FROM_BEGINNING = typer.Option(False, help="With --follow, start at the oldest record (default: the newest).")
LIMIT = typer.Option(None, min=1, help="Stop after this many records.")


@dlq_app.command("tail")
def dlq_tail(ctx: typer.Context, follow: bool = FOLLOW, from_beginning: bool = FROM_BEGINNING,
             limit: int | None = LIMIT) -> None:
    """Print dead letters: when, where from (topic[partition]@offset), key, reason, message, the original's start."""
    _tail_topic(ctx, "dlq", follow, from_beginning, limit)


@late_app.command("tail")
def late_tail(ctx: typer.Context, follow: bool = FOLLOW, from_beginning: bool = FROM_BEGINNING,
              limit: int | None = LIMIT) -> None:
    """Print late transactions: event time, user, id, amount, and why they were not scored."""
    _tail_topic(ctx, "late", follow, from_beginning, limit)


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
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(late_app, name="late")
