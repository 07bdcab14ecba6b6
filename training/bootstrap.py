"""`fraudstream bootstrap`: a fresh deployment's first model, trained on simulated history, when the registry is empty.

The streamers refuse to start without a current model and the trainer needs labelled history that a fresh
deployment does not have yet, so docker-compose.yml runs this once before any streamer: with a current model in the
registry it says so and does nothing; otherwise it simulates a few weeks of labelled traffic (as `make demo` does),
trains on it with `fraudstream train`'s pipeline and publishes the result as the current version. A real retrain
from the topics (`fraudstream train --from-topics`) replaces it once verdicts have come in.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import typer

from fraudstream.cli import settings_of
from fraudstream.errors import InputError


def bootstrap(
    ctx: typer.Context,
    customers: int = typer.Option(2_000, min=1, help="Simulated customers (cards)."),
    merchants: int = typer.Option(500, min=1, help="Simulated merchants (terminals)."),
    days: int = typer.Option(35, min=1, help="Days of simulated history (the demo config needs 28 or more)."),
    start: str = typer.Option("2024-01-01", help="First simulated day, YYYY-MM-DD (UTC)."),
    seed: int = typer.Option(11, help="Simulation seed."),
    config: Path | None = typer.Option(None, "--config", help="Training config YAML (default: training's defaults)."),
    report_dir: Path = typer.Option(Path("reports/bootstrap"), "--report-dir", help="Where the training report goes."),
) -> None:
    """Publish a first model trained on simulated history if the registry has no current model; else do nothing."""
    from models.registry import ModelRegistry

    settings = settings_of(ctx)
    current = ModelRegistry(settings.registry.path).current_version()
    if current is not None:
        typer.echo(f"registry {settings.registry.path} already has a current model ({current}); nothing to do")
        return
    try:
        first_day = datetime.strptime(start, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"--start '{start}' is not a date like 2024-01-01") from None

    from bankbus.frames import write_canonical
    from bankbus.simulator import SimulationConfig, simulate_frame
    from training.cli import train

    typer.echo(f"registry {settings.registry.path} has no current model: training a first one on {days} days of "
               f"simulated history ({customers:,} customers, {merchants:,} merchants, seed {seed})")
    frame = simulate_frame(SimulationConfig(customers=customers, merchants=merchants, days=days, start=first_day,
                                            seed=seed))
    with tempfile.TemporaryDirectory(prefix="fraudstream-bootstrap-") as work:
        history = Path(work) / "history.parquet"
        write_canonical(frame, history)
        train(ctx, history=history, from_topics=False, start=None, end=None, days=None, config=config, registry=None,
              report_dir=report_dir, force=True, no_publish=False, describe_config=False)
