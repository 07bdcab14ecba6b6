"""`python -m bench` (also `make bench`): passthrough ceiling, engines and quix reference end to end, stages, training.

Writes bench/results/bench.json and bench/results/bench.md and prints the table. Uses the configured stack
(FRAUD_* environment; by default the embedded one, started if needed and stopped again if this run started it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SECTIONS = ("training", "stages", "e2e", "api", "soak")
DEFAULT_SECTIONS = ("training", "stages", "e2e", "api")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma list of {', '.join(SECTIONS)} (soak is not in the default)")
    parser.add_argument("--engines", default="kafka,faust,quix",
                        help="comma list of kafka, faust and quix (the quix-streams reference pipeline, max only)")
    parser.add_argument("--no-quix", action="store_true",
                        help="skip the quix-streams reference (and building its virtualenv)")
    parser.add_argument("--events", type=int, default=30_000, help="backlog size of the max runs")
    parser.add_argument("--rates", default="0.1,0.5,0.9", help="paced runs, fractions of each engine's max")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-rate", type=float, default=None,
                        help="events/s of the soak (default: half the kafka engine's max of this run, else 500)")
    parser.add_argument("--api-rate", type=float, default=500.0, help="scoring API requests/s (section api)")
    parser.add_argument("--api-seconds", type=float, default=20.0, help="scoring API load duration (section api)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run of a few minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.engines = [e for e in args.engines.split(",") if e and not (args.no_quix and e == "quix")]
    if set(args.engines) - {"kafka", "faust", "quix"}:
        parser.error("--engines takes kafka, faust and/or quix")
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if args.quick:
        args.events, args.paced_seconds = min(args.events, 5000), min(args.paced_seconds, 8.0)
    return args


def simulate(customers: int, days: int, start: date, seed: int) -> pd.DataFrame:
    from bankbus.simulator import SimulationConfig, simulate_frame

    return simulate_frame(SimulationConfig(customers=customers, merchants=max(customers // 4, 50), days=days,
                                           start=start, seed=seed))


def traffic_of(events: int) -> pd.DataFrame:
    """Simulated traffic (14 days) of at least `events` rows: the customer count is raised until it suffices
    (about 30 transactions per customer, but the simulator's draws vary), so a backlog of `events` really exists."""
    customers = max(events, 40_000) // 30
    while True:
        traffic = simulate(customers, 14, date(2024, 3, 1), 11)
        if len(traffic) >= events:
            return traffic
        customers = int(customers * events / max(len(traffic), 1) * 1.05) + 1


def ensure_model(registry: Path) -> dict[str, Any] | None:
    """Train the bench model (and time it) unless the registry already has one; None when reused."""
    from bench.stages import training
    from models.registry import ModelRegistry

    if ModelRegistry(registry, allow_unsigned=True).current_version() is not None:
        return None
    say("training the bench model (MLP + stack) on small simulated data")
    return training(simulate(600, 28, date(2024, 1, 1), 7), registry)


def soak(base: Any, traffic: pd.DataFrame, args: argparse.Namespace, e2e: dict[str, Any] | None) -> dict[str, Any]:
    from bench.e2e import E2EContext
    from bench.soak import run_soak
    from fraudstream.errors import FraudstreamError

    rate = args.soak_rate
    if rate is None:
        runs = (e2e or {}).get("runs", [])
        maxima = [r["events_per_s"] for r in runs if r["engine"] == "kafka" and r["mode"] == "max"]
        rate = maxima[0] / 2 if maxima else 500.0
    say(f"soak: kafka engine at {rate:,.0f} events/s for {args.soak_seconds:.0f} s")
    logs = args.out / "logs"  # the worker's log stays for a look afterwards
    logs.mkdir(parents=True, exist_ok=True)
    ctx = E2EContext(base, traffic, logs)
    try:
        return run_soak(ctx.isolated("soak"), traffic, "kafka", rate, args.soak_seconds, logs)
    except FraudstreamError as exc:  # recorded in the results with the other sections', not lost with them
        say(f"soak failed: {exc}")
        return {"engine": "kafka", "rate": round(rate, 1), "seconds": args.soak_seconds, "error": str(exc)[:2000]}
    finally:
        ctx.cleanup()


def say(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.machine import machine_info
    from fraudstream.infra.stack import down, up
    from fraudstream.settings import build_settings

    started = time.monotonic()
    base = build_settings()
    registry = base.embedded.state_dir.resolve() / "bench" / "registry"
    base = base.with_overrides(registry={"path": str(registry), "allow_unsigned": True})  # the bench's own models
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": machine_info(), "arguments": {k: str(v) for k, v in vars(args).items()}}
    if "e2e" in args.sections and "quix" in args.engines:  # before the stack: a failed build costs nothing else
        from bench.quix_run import ensure_venv

        ensure_venv(say=say)
    stack = up(base, create_topics=False)
    try:
        if "training" in args.sections:
            from bench.stages import training

            say("training: every model on one fold of small simulated data")
            result["training"] = training(simulate(600, 28, date(2024, 1, 1), 7), registry)
        else:
            ensure_model(registry)
        traffic = traffic_of(args.events)
        if "stages" in args.sections:
            from bench import stages

            say("stages: fold, validation, state round trip, scoring, offline features, alert explanations, drift")
            result["stages"] = {
                "fold": stages.fold(traffic),
                "validation": stages.validation(traffic),
                "state": stages.state_round_trip(base, traffic),
                "scoring": stages.scoring(registry, (1, 256, 4096) if args.quick else stages.SCORING_SIZES),
                "offline_features": stages.offline_features(traffic.iloc[: 20_000 if args.quick else 100_000]),
                "explanations": stages.explanations(registry),
                "drift": stages.drift(),
            }
        if "e2e" in args.sections:
            from bench.e2e import E2EContext, run_e2e

            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                ctx = E2EContext(base, traffic, Path(tmp))
                try:
                    result["e2e"] = run_e2e(ctx, args.engines, args.events, args.rates, args.paced_seconds, say)
                finally:
                    ctx.cleanup()
        if "api" in args.sections:
            from bench.api_load import run_api_bench
            from bench.e2e import E2EContext

            with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
                ctx = E2EContext(base, traffic, Path(tmp))
                try:
                    result["api"] = run_api_bench(ctx, args.api_rate, args.api_seconds, say)
                finally:
                    ctx.cleanup()
        if "soak" in args.sections:
            result["soak"] = soak(base, traffic, args, result.get("e2e"))
    finally:
        if stack.started:
            down(base)
    result["took_s"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    from bench.report import markdown
    from fraudstream.errors import FraudstreamError

    args = parse_args(argv)
    try:
        result = run(args)
    except FraudstreamError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (args.out / "bench.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
