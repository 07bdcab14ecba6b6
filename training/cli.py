"""`fraudstream train`: retrain from a history file, write a report folder, publish to the model registry."""

from __future__ import annotations

from pathlib import Path

import typer

from fraudstream.cli import settings_of


def train(
    ctx: typer.Context,
    history: Path = typer.Option(..., "--history", help="Parquet/CSV history with labels (canonical or handbook)."),
    config: Path | None = typer.Option(None, "--config", help="Training config YAML (see training/config.py)."),
    registry: Path | None = typer.Option(None, "--registry", help="Registry folder (default: settings registry.path)."),
    report_dir: Path = typer.Option(Path("reports/train"), "--report-dir", help="Where report.json/.md and plots go."),
    force: bool = typer.Option(False, "--force", help="Make the new version current even if worse than the champion."),
    no_publish: bool = typer.Option(False, "--no-publish", help="Evaluate and report only."),
) -> None:
    """Build features, evaluate every configured model on the protocol's folds, report, publish MLP + stack."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.config import FeatureConfig
    from models.registry import ModelRegistry
    from training.config import load_training_config
    from training.history import read_history
    from training.pipeline import run_training
    from training.report import write_report

    settings = settings_of(ctx)
    cfg = load_training_config(config)
    console = Console(stderr=True)
    target = None if no_publish else ModelRegistry(registry or settings.registry.path)
    frame = read_history(history)
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
        raise typer.Exit(code=3)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
