"""`fraudstream train`: retrain from a history file, write a report folder, publish to the model registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import ExitCode, InputError

if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.settings import Settings


def train(
    ctx: typer.Context,
    history: Path | None = typer.Option(
        None, "--history", help="Parquet/CSV history with labels (canonical or handbook)."
    ),
    from_topics: bool = typer.Option(
        False, "--from-topics", help="Read the transactions topic and its verdicts on labels instead of a file."
    ),
    start: datetime | None = typer.Option(None, "--start", help="With --from-topics: first event time (UTC)."),
    end: datetime | None = typer.Option(None, "--end", help="With --from-topics: end of the range (UTC, exclusive)."),
    days: int | None = typer.Option(None, "--days", min=1, help="With --from-topics: the last N days up to now."),
    config: Path | None = typer.Option(None, "--config", help="Training config YAML (keys: --describe-config)."),
    registry: Path | None = typer.Option(None, "--registry", help="Registry folder (default: settings registry.path)."),
    report_dir: Path = typer.Option(Path("reports/train"), "--report-dir", help="Where report.json/.md and plots go."),
    force: bool = typer.Option(False, "--force", help="Make the new version current even if worse than the champion."),
    no_publish: bool = typer.Option(False, "--no-publish", help="Evaluate and report only."),
    describe_config: bool = typer.Option(False, "--describe-config",
                                         help="Print every training-config key (type, default, meaning) and exit."),
) -> None:
    """Build features, evaluate every configured model on the protocol's folds, report, publish MLP + stack."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from training.config import describe_config as config_table
    from training.config import load_training_config

    if describe_config:
        typer.echo(config_table(), nl=False)
        return

    settings = settings_of(ctx)
    _check_history_options(history, from_topics, start, end, days)
    cfg = load_training_config(config)
    frame = _history_frame(settings, history, start, end, days)  # before the models are imported: fails fast

    from features.config import FeatureConfig
    from models.registry import ModelRegistry
    from training.pipeline import run_training
    from training.report import write_report

    console = Console(stderr=True)
    target = None if no_publish else ModelRegistry.from_settings(settings, registry)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("building features", total=None)
        report = run_training(
            frame,
            cfg,
            FeatureConfig.from_settings(settings.features),
            registry=target,
            force=force,
            progress=lambda msg: bar.update(task, description=msg),
        )
        bar.update(task, description="writing report")
        written = write_report(report, report_dir)
    for name, vals in report["mean_metrics"].items():
        console.print(
            f"{name:20s} AUC {vals['roc_auc']:.3f}  AP {vals['average_precision']:.3f}  "
            f"CP@{cfg.card_precision_k} {vals.get(f'card_precision_at_{cfg.card_precision_k}', float('nan')):.3f}"
        )
    typer.echo(f"report: {written[1]}")
    if report.get("version"):
        typer.echo(f"published {report['version']}: {report['promotion']}")
    if str(report.get("promotion", "")).startswith("refused"):
        raise typer.Exit(code=ExitCode.NOT_PROMOTED)


def _check_history_options(
    history: Path | None, from_topics: bool, start: datetime | None, end: datetime | None, days: int | None
) -> None:
    """One source of history, and a range for the topics: checked before anything is read or imported."""
    if (history is None) == (not from_topics):
        raise InputError("give either --history FILE or --from-topics (with --start/--end or --days)")
    if from_topics and days is None and (start is None or end is None):
        raise InputError("--from-topics needs --start and --end, or --days")


def _history_frame(
    settings: Settings, history: Path | None, start: datetime | None, end: datetime | None, days: int | None
) -> pd.DataFrame:
    """The labelled history: a file, or a time range of the topics read without any consumer-group commit."""
    if history is not None:
        from training.history import read_history

        return read_history(history)
    from bankbus.topic_history import load_topic_history

    if days is not None:
        end = datetime.now(UTC)
        start = end - timedelta(days=days)
    assert start is not None and end is not None  # _check_history_options
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    return load_topic_history(settings, start, end).frame


def tune(
    ctx: typer.Context,
    history: Path = typer.Option(..., "--history", help="History file, or a folder of its .parquet/.csv files."),
    config: Path | None = typer.Option(None, "--config", help="Base training config YAML (protocol lengths, seed)."),
    grid: Path | None = typer.Option(None, "--grid", help="Grid YAML: models: {model: {param: [values]}}."),
    validation_end: str = typer.Option(
        "2018-08-01", "--validation-end", help="End of the validation period (exclusive); nothing later is read."
    ),
    folds: int = typer.Option(4, "--folds", min=1, help="Validation folds (weeks) ending at --validation-end."),
    out: Path = typer.Option(Path("reports/tune"), "--out", help="Folder for tune.json and tune.md."),
    ablation: bool = typer.Option(
        False, "--ablation", help="Then refit the choice with each feature group left out (an ablation table)."
    ),
) -> None:
    """Pick the scorer and hyperparameters on the validation weeks (book protocol, mean AP); write tune.json/.md."""
    import pandas as pd
    from rich.console import Console

    from training.config import load_training_config
    from training.tune import load_grid, write_result
    from training.tune import tune as run_tune

    try:
        end = pd.Timestamp(validation_end)
    except ValueError:
        raise InputError(f"--validation-end '{validation_end}' is not a date like 2018-08-01") from None
    base = load_training_config(config)
    base = base.model_copy(update={"prequential": base.prequential.model_copy(update={"n_folds": folds})})
    candidates = load_grid(grid)
    frame = _history_folder(history)

    from features.config import FeatureConfig

    settings = settings_of(ctx)
    console = Console(stderr=True)
    with console.status("tuning") as status:
        result = run_tune(
            frame,
            base,
            FeatureConfig.from_settings(settings.features),
            candidates,
            validation_end=end,
            ablation=ablation,
            # a spinner on a terminal; one line per step when stderr is a file (a long run stays readable)
            say=(lambda msg: status.update(msg)) if console.is_terminal else (lambda msg: console.print(msg)),
        )
    json_path, md_path = write_result(result, out)
    for row in result["table"][:5]:
        console.print(
            f"{row['candidate'][:70]:70s} AP {row['average_precision']['mean']:.3f}  AUC {row['roc_auc']['mean']:.3f}"
        )
    for row in result.get("ablation", {}).get("table", []):
        delta = row["delta_average_precision"]["mean"]
        console.print(f"ablation {row['candidate'][:40]:40s} AP {row['average_precision']['mean']:.3f} ({delta:+.3f})")
    choice = result["choice"]
    typer.echo(f"choice (book protocol, mean AP over {folds} validation folds): {choice['candidate']}")
    typer.echo(f"results: {json_path} (train with --config {json_path}), {md_path}")


def _history_folder(path: Path) -> pd.DataFrame:
    """A history file, or every .parquet/.csv file of a folder concatenated in time order."""
    import pandas as pd

    from training.history import read_history

    if not path.is_dir():
        return read_history(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv") and "features" not in p.name)
    if not files:
        raise InputError(f"history folder {path} holds no .parquet or .csv file")
    frame = pd.concat([read_history(f) for f in files], ignore_index=True)
    return frame.sort_values("timestamp", kind="mergesort").reset_index(drop=True)


def register(app: typer.Typer) -> None:
    from training.bootstrap import bootstrap

    app.command("train")(train)
    app.command("tune")(tune)
    app.command("bootstrap")(bootstrap)
