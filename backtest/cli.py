"""`fraudstream backtest`: replay history through the real stream core in isolation and write a report folder."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import InputError


class Protocol(StrEnum):
    handbook = "handbook"


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} '{value}' is not a date or ISO time like 2018-07-04") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def backtest(
    ctx: typer.Context,
    history: Path | None = typer.Option(None, "--history", help="History file, or a folder of transactions_*.parquet."),
    fmt: str | None = typer.Option(None, "--format", help="Built-in input format (handbook; auto-detected)."),
    mapping: Path | None = typer.Option(None, "--map", help="Column mapping file, as for `fraudstream import`."),
    from_topic: bool = typer.Option(
        False, "--from-topic", help="Read the transactions/labels topics in --start..--end."
    ),
    start: str | None = typer.Option(None, "--start", help="First event time to read (ISO date/time, UTC)."),
    end: str | None = typer.Option(None, "--end", help="End of the events to read (exclusive)."),
    model: str | None = typer.Option(None, "--model", help="Registry version to score with, or 'current'."),
    registry: Path | None = typer.Option(None, "--registry", help="Registry for --model (default settings)."),
    assess_start: str | None = typer.Option(None, "--assess-start", help="With --model: first assessed time."),
    assess_end: str | None = typer.Option(None, "--assess-end", help="With --model: end of the assessed time."),
    protocol: Protocol | None = typer.Option(
        None, "--protocol", help="'handbook': train 7, delay 7, test 7, 31 warm-up days."
    ),
    train_days: int | None = typer.Option(None, "--train-days", min=1, help="Walk-forward: days per training window."),
    delay_days: int = typer.Option(
        7, "--delay-days", min=0, help="Walk-forward: days between training and test windows."
    ),
    test_days: int = typer.Option(7, "--test-days", min=1, help="Walk-forward: days per test window (retrain period)."),
    folds: int | None = typer.Option(
        None, "--folds", min=1, help="Number of folds (default: as many as the range allows)."
    ),
    first_test_start: str | None = typer.Option(None, "--first-test-start", help="Start of the first test window."),
    warmup_days: int | None = typer.Option(
        None, "--warmup-days", min=0, help="History days before the first training."
    ),
    config: Path | None = typer.Option(None, "--config", help="Training config YAML for walk-forward folds."),
    train_inline: bool = typer.Option(
        False, "--train-inline", help="Train each fold in this process when needed (default: a forked process)."
    ),
    label_delay: float = typer.Option(
        7.0, "--label-delay", min=0.0, help="Days after a transaction its label enters the stream."
    ),
    report_dir: Path = typer.Option(Path("reports/backtest"), "--report-dir", help="Where the report goes."),
    fast: bool = typer.Option(False, "--fast", help="Skip Kafka: the same core and Redis store, batches fed directly."),
    state: str = typer.Option(
        "redis", "--state", help="With --fast: the store, redis (the run's namespace) or memory (no Redis at all)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the run's Redis keys and topics (for inspection)."),
    batch_size: int = typer.Option(20_000, "--batch-size", min=1, help="Events per StreamProcessor.process call."),
    partitions: int | None = typer.Option(None, "--partitions", min=1, help="Partitions of the run's topics."),
    wait_timeout: float = typer.Option(
        0.0, "--wait-timeout", min=0.0, help="Seconds to wait at start for Redis (and Kafka) to answer; 0: at once."
    ),
) -> None:
    """Replay history through the real pipeline (isolated Redis namespace, topics and group) and report."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from fraudstream.infra.wait import dependencies, wait_for_dependencies

    settings = settings_of(ctx)
    if history is None and not from_topic:  # before the heavy imports below (the runner says the same)
        raise InputError("give --history FILE|FOLDER or --from-topic with --start/--end")
    from backtest.runner import check_state

    check_state(fast, state)
    # Redis for its store, Kafka for the Kafka mode and for topic input: before any import or training.
    wait_for_dependencies(
        dependencies(settings, kafka=from_topic or not fast, redis=state == "redis"),
        bound_s=wait_timeout,
        bound_name="--wait-timeout",
    )

    from backtest.job import run_backtest
    from backtest.runner import BacktestOptions

    opts = BacktestOptions(
        report_dir=report_dir,
        history=history,
        fmt=fmt,
        mapping=mapping,
        from_topic=from_topic,
        start=_when(start, "--start"),
        end=_when(end, "--end"),
        model=model,
        registry=registry,
        assess_start=_when(assess_start, "--assess-start"),
        assess_end=_when(assess_end, "--assess-end"),
        protocol=protocol.value if protocol is not None else None,
        train_days=train_days,
        delay_days=delay_days,
        test_days=test_days,
        folds=folds,
        first_test_start=_when(first_test_start, "--first-test-start"),
        warmup_days=warmup_days,
        config=config,
        train_inline=train_inline,
        label_delay_days=label_delay,
        fast=fast,
        state=state,
        keep=keep,
        batch_size=batch_size,
        partitions=partitions,
    )
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=None)
        report, _written = run_backtest(
            settings,
            opts,
            say=lambda msg: bar.update(task, description=msg),
            on_total=lambda n: bar.update(task, total=n, completed=0),
            advance=lambda n: bar.advance(task, n),
        )
    from backtest.report import summary_lines

    for line in summary_lines(report):
        console.print(line)
    for stats in report["replay"]:
        console.print(f"replay ({stats['mode']}): {stats['events']:,} events at {stats['events_per_s']:,.0f} events/s")
    typer.echo(f"report: {report_dir / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
