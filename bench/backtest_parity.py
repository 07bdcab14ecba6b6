"""Stream path vs batch path on the handbook-sim validation weeks (book protocol: train 7, delay 7, assess 7, 4 folds).

Runs `fraudstream backtest`'s job in fast mode (the real StreamProcessor and RedisFeatureStore, an isolated namespace)
and compares, per fold, the AP of the stream's scores with the AP the training module's offline evaluation gives
for the same fold model on the same window. Writes bench/results/backtest_parity.{json,md}; exits 1 on a gap > 0.005.

    python -m bench.backtest_parity [--shared DIR] [--config cfg.yaml] [--report-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
TOLERANCE = 0.005
FIRST_VALIDATION_WEEK = datetime(2018, 7, 4, tzinfo=UTC)


def parity_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for fold in report["folds"]:
        m = fold["metrics"]
        rows.append(
            {
                "fold": fold["name"],
                "train": f"{fold['train_start'][:10]} .. {fold['train_end'][:10]}",
                "stream_ap": m.get("average_precision"),
                "offline_ap": m.get("offline_average_precision"),
                "ap_difference": m.get("ap_difference"),
                "stream_auc": m.get("roc_auc"),
                "offline_auc": m.get("offline_roc_auc"),
                "max_abs_score_difference": fold.get("max_abs_score_difference"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--config", type=Path, default=None, help="training config YAML (default: training's)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/backtest-parity"))
    args = parser.parse_args(argv)

    from backtest.job import run_backtest
    from backtest.runner import BacktestOptions
    from fraudstream.settings import load_settings

    folder = args.shared / "datasets" / "handbook-sim"
    opts = BacktestOptions(
        report_dir=args.report_dir,
        history=folder,
        end=datetime(2018, 8, 1, tzinfo=UTC),  # the validation weeks end 2018-07-31, whatever the folder holds
        train_days=7,
        delay_days=7,
        test_days=7,
        folds=4,
        first_test_start=FIRST_VALIDATION_WEEK,
        config=args.config,
        fast=True,
    )
    report, _ = run_backtest(load_settings(), opts, say=lambda msg: print(msg, file=sys.stderr, flush=True))
    rows = parity_rows(report)
    worst = max(r["ap_difference"] for r in rows)
    result = {
        "protocol": "train 7, delay 7, assess 7; assessed weeks 2018-07-04..10, 07-11..17, 07-18..24, 07-25..31",
        "config": str(args.config) if args.config else "training defaults (scorer's models only)",
        "folds": rows,
        "worst_ap_difference": worst,
        "tolerance": TOLERANCE,
        "replay": report["replay"],
        "timings": report["timings"],
        "overall": {k: report["overall"].get(k) for k in ("roc_auc", "average_precision", "card_precision_at_100")},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backtest_parity.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [
        "# Backtest parity: stream path vs training's batch path (handbook-sim validation weeks)",
        "",
        "| fold | train window | stream AP | offline AP | |diff| | stream AUC | offline AUC | max |score diff| |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['fold']} | {r['train']} | {r['stream_ap']:.4f} | {r['offline_ap']:.4f} | {r['ap_difference']:.2e} "
            f"| {r['stream_auc']:.4f} | {r['offline_auc']:.4f} | {r['max_abs_score_difference']:.2e} |"
        )
    rate = report["replay"][0]
    speed = f"{rate['events']:,} events in {rate['seconds']:.0f} s = {rate['events_per_s']:,.0f} events/s"
    lines += ["", f"Replay (fast mode): {speed}."]
    (RESULTS / "backtest_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
