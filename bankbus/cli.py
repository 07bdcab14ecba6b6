"""Commands of the bank bus: simulate, import, publish, replay."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer

from fraudstream.errors import InputError


def simulate(
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .csv."),
    customers: int = typer.Option(1_000, help="Number of customers (cards)."),
    merchants: int = typer.Option(500, help="Number of merchants (terminals)."),
    days: int = typer.Option(30, help="Days of traffic."),
    start: str = typer.Option("2024-01-01", help="First day, YYYY-MM-DD (UTC)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same data."),
    fraud_rates: str = typer.Option(
        "", help="NAME=RATE,...: large_amount (share of rows), compromised_terminal (per merchant-day), "
        "compromised_card, card_testing, account_takeover (per customer-day)."
    ),
) -> None:
    """Simulate customers, merchants and transactions with labelled fraud scenarios."""
    from bankbus.frames import file_format, write_canonical
    from bankbus.scenarios import FraudRates
    from bankbus.simulator import SimulationConfig, simulate_frame

    file_format(out)
    try:
        first_day = datetime.strptime(start, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"--start '{start}' is not a date like 2024-01-01") from None
    config = SimulationConfig(
        customers=customers, merchants=merchants, days=days, start=first_day, seed=seed,
        rates=FraudRates.parse(fraud_rates),
    )
    began = time.perf_counter()
    frame = simulate_frame(config)
    elapsed = time.perf_counter() - began
    write_canonical(frame, out)
    frauds = int(frame["is_fraud"].sum())
    typer.echo(
        f"simulated {len(frame):,} transactions ({frauds:,} fraudulent) in {elapsed:.2f} s "
        f"({len(frame) / max(elapsed, 1e-9):,.0f} rows/s); wrote {out}"
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


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("import")(import_data)
