"""Commands of the bank bus: simulate, import, publish, replay."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fraudstream.errors import InputError

if TYPE_CHECKING:
    from bankbus.publisher import PublishReport


def simulate(
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .csv."),
    customers: int = typer.Option(1_000, min=1, help="Number of customers (cards)."),
    merchants: int = typer.Option(500, min=1, help="Number of merchants (terminals)."),
    days: int = typer.Option(30, min=1, help="Days of traffic."),
    start: str = typer.Option("2024-01-01", help="First day, YYYY-MM-DD (UTC)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same data."),
    fraud_rates: str = typer.Option(
        "", help="NAME=RATE,...: large_amount (share of rows), compromised_terminal (per merchant-day), "
        "compromised_card, card_testing, account_takeover (per customer-day)."
    ),
    run_id: str | None = typer.Option(
        None, help="Transaction ids are T<RUN_ID>-0000000001...; default: a fresh id from the clock, so two runs "
        "never share an id (--run-id '' keeps the bare T0000000001...)."
    ),
) -> None:
    """Simulate customers, merchants and transactions with labelled fraud scenarios."""
    from bankbus.frames import file_format, write_canonical
    from bankbus.scenarios import FraudRates
    from bankbus.simulator import SimulationConfig, new_run_id, simulate_frame, transaction_prefix

    file_format(out)
    try:
        first_day = datetime.strptime(start, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"--start '{start}' is not a date like 2024-01-01") from None
    config = SimulationConfig(
        customers=customers, merchants=merchants, days=days, start=first_day, seed=seed,
        rates=FraudRates.parse(fraud_rates), run_id=new_run_id(time.time_ns()) if run_id is None else run_id,
    )
    began = time.perf_counter()
    frame = simulate_frame(config)
    elapsed = time.perf_counter() - began
    write_canonical(frame, out)
    frauds = int(frame["is_fraud"].sum())
    typer.echo(
        f"simulated {len(frame):,} transactions ({frauds:,} fraudulent) in {elapsed:.2f} s "
        f"({len(frame) / max(elapsed, 1e-9):,.0f} rows/s); ids {transaction_prefix(config.run_id)}0000000000..; "
        f"wrote {out}"
    )


def import_data(
    src: Path = typer.Argument(..., help="CSV or Parquet file to import."),
    out: Path = typer.Option(..., "--out", help="Canonical output file: .parquet or .csv."),
    fmt: str | None = typer.Option(None, "--format", help="A built-in format: handbook."),
    mapping_file: Path | None = typer.Option(None, "--map", help="YAML/JSON mapping file (columns, defaults, ...)."),
    col: list[str] = typer.Option([], "--col", help="canonical=source, repeatable (e.g. --col amount=TX_AMOUNT)."),
    timezone: str | None = typer.Option(None, help="Time zone of naive timestamps (default UTC)."),
    rejects: Path | None = typer.Option(None, help="Where rejected rows go (default OUT.rejects.csv)."),
) -> None:
    """Import outside data into the canonical columns; rows that fail validation go to a rejects file."""
    from dataclasses import replace

    from bankbus.importer import FORMATS, ColumnMapping, import_file, rejects_path_for

    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"--format '{fmt}' is unknown; built-in formats: {', '.join(FORMATS)}")
    mapping = FORMATS[fmt] if fmt else ColumnMapping()
    if mapping_file is not None:
        loaded = ColumnMapping.from_file(mapping_file)
        mapping = replace(loaded, columns={**mapping.columns, **loaded.columns})
    mapping = mapping.with_pairs(col)
    if timezone:
        mapping = replace(mapping, timezone=timezone)
    began = time.perf_counter()
    result = import_file(src, out, mapping, rejects)
    elapsed = time.perf_counter() - began
    typer.echo(
        f"imported {len(result.frame):,} of {result.source_rows:,} rows in {elapsed:.2f} s; wrote {out}"
        + (f"; {len(result.rejects):,} rejected rows in {rejects_path_for(out, rejects)}"
           if len(result.rejects) else "")
    )


class Stamp(StrEnum):
    event = "event"
    send = "send"


RATE = typer.Option(None, "--rate", help="Messages per second.")
SPEED = typer.Option(None, "--speed", help="Original pacing (event-time gaps) sped up X times.")
FASTEST = typer.Option(False, "--max", help="As fast as possible (the default).")


@contextmanager
def _progress(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(set_total, advance) callbacks driving a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield (lambda total: bar.update(task, total=total)), (lambda n: bar.advance(task, n))


def parse_duration(text: str) -> timedelta:
    """'3d', '12h', '30m', '45s' (or a plain number of seconds)."""
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    raw = text.strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise InputError(f"duration '{text}' is not like 3d, 12h, 30m or 45s") from None
    if not seconds >= 0:
        raise InputError(f"duration '{text}' must not be negative")
    return timedelta(seconds=seconds)


def _parse_time(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{name} '{text}' is not an ISO-8601 time like 2024-01-05T00:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _done(what: str, report: PublishReport) -> None:
    typer.echo(f"{what}: {report.delivered:,} messages acknowledged in {report.elapsed_s:.2f} s "
               f"({report.per_second:,.0f} msg/s)")


def publish(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Canonical .parquet or .csv file."),
    topic: str | None = typer.Option(None, help="Target topic (default: the transactions topic)."),
    rate: float | None = RATE, speed: float | None = SPEED, fastest: bool = FASTEST,
    labels_delay: str | None = typer.Option(
        None, help="Also publish each row's Label to the labels topic this long after it (e.g. 3d)."),
    labels_topic: str | None = typer.Option(None, help="Topic for labels (default: the labels topic)."),
    stamp: Stamp = typer.Option(
        "event", help="Kafka timestamp of each message: event (its event time; replays by time range need it) or "
        "send (when it is produced: the streamer's publish-to-score latency is then real)."),
) -> None:
    """Publish a file to Kafka: key user_id, Transaction JSON, idempotent producer, every delivery counted."""
    from bankbus.frames import read_canonical
    from bankbus.pacing import Pacing
    from bankbus.publisher import outbox_for, send
    from fraudstream.cli import settings_of
    from fraudstream.infra.topics import ensure_topics

    settings = settings_of(ctx)
    pacing = Pacing.from_options(rate=rate, speed=speed, fastest=fastest)
    target = topic or settings.topics.transactions
    label_target = (labels_topic or settings.topics.labels) if labels_delay is not None else None
    delay = parse_duration(labels_delay) if labels_delay is not None else None
    frame = read_canonical(file)
    outbox = outbox_for(frame, target, label_target, delay)
    ensure_topics(settings, [target] + ([label_target] if label_target else []))
    with _progress(f"publish {file.name}") as (set_total, advance):
        set_total(len(outbox))
        report = send(settings, outbox, pacing, on_progress=advance, stamp_send_time=stamp == Stamp.send)
    _done(f"published {len(frame):,} transactions to {target}"
          + (f" and {len(frame):,} labels to {label_target}" if label_target else ""), report)


def replay(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="A canonical file to replay (or use --from-topic)."),
    from_topic: str | None = typer.Option(None, help="Replay a time range of this topic."),
    start: str | None = typer.Option(None, help="Range start, ISO-8601 (inclusive)."),
    end: str | None = typer.Option(None, help="Range end, ISO-8601 (exclusive)."),
    to_topic: str = typer.Option(..., help="The separate replay topic (created if missing)."),
    rate: float | None = RATE, speed: float | None = SPEED, fastest: bool = FASTEST,
) -> None:
    """Replay a file or a topic time range into a replay topic; no consumer group is joined or committed."""
    from bankbus.pacing import Pacing
    from bankbus.replay import replay_file, replay_topic
    from fraudstream.cli import settings_of

    settings = settings_of(ctx)
    pacing = Pacing.from_options(rate=rate, speed=speed, fastest=fastest)
    if (file is None) == (from_topic is None):
        raise InputError("give either FILE or --from-topic (with --start and --end)")
    with _progress(f"replay to {to_topic}") as (set_total, advance):
        if file is not None:
            report = replay_file(settings, file, to_topic, pacing, on_progress=advance, on_total=set_total)
        else:
            if start is None or end is None:
                raise InputError("--from-topic needs --start and --end")
            assert from_topic is not None
            report = replay_topic(settings, from_topic, _parse_time("--start", start), _parse_time("--end", end),
                                  to_topic, pacing, on_progress=advance, on_total=set_total)
    _done(f"replayed into {to_topic}", report)


demo_app = typer.Typer(help="Helpers of the live demo (scripts/demo.sh): split a simulated world, watch quality.",
                       no_args_is_help=True)


@demo_app.command("split")
def demo_split(
    world: Path = typer.Argument(..., help="A simulated canonical file with its truth (is_fraud)."),
    history: Path = typer.Option(..., help="Out: every day before the live days (to train on)."),
    warmup: Path = typer.Option(..., help="Out: the warm-up days just before the live days."),
    live: Path = typer.Option(..., help="Out: the live days."),
    live_days: int = typer.Option(2, min=1, help="The last N days are live."),
    warmup_days: int = typer.Option(30, min=0, help="Days the streamer reads first (features' longest window)."),
) -> None:
    """Cut a simulated world by day into history, warm-up and live files."""
    from bankbus.demo import split_world

    n = split_world(world, history, warmup, live, live_days=live_days, warmup_days=warmup_days)
    typer.echo(f"history {n[0]:,} transactions ({history}), warm-up {n[1]:,} ({warmup}), live {n[2]:,} ({live})")


@demo_app.command("watch")
def demo_watch(
    ctx: typer.Context,
    truth: Path = typer.Option(..., help="The live file with the simulator's truth (is_fraud)."),
    since_ms: int = typer.Option(..., help="Read scores and alerts from this Kafka time (epoch ms)."),
    expected: int = typer.Option(0, min=0, help="Transactions the demo will publish (warm-up + live)."),
    warmup: int = typer.Option(0, min=0, help="Scores to see before the live part counts (warm-up rows)."),
    ready: Path | None = typer.Option(None, help="Touched once the warm-up is scored."),
    summary: Path | None = typer.Option(None, help="Where the final figures go (JSON)."),
    every: float = typer.Option(5.0, min=0.5, help="Seconds between two quality lines."),
) -> None:
    """Print live alerts marked with the truth and the alert quality every few seconds; final figures on SIGTERM."""
    from bankbus.demo import Watch
    from bankbus.quality import Truth
    from fraudstream.cli import settings_of

    watch = Watch(settings_of(ctx), Truth.from_file(truth), since_ms=since_ms, expected=expected, warmup=warmup,
                  ready=ready, summary=summary, echo=lambda line: typer.echo(line), every_s=every)
    watch.run()


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("import")(import_data)
    app.command("publish")(publish)
    app.command("replay")(replay)
    app.add_typer(demo_app, name="demo")
