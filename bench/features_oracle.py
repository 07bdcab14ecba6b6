"""Handbook oracle: build the book's features with fraudstream's offline path and compare every golden row.

    python -m bench.features_oracle [--shared DIR]

Prints and writes mismatches per column to bench/results/features_oracle.json (target: 0 everywhere).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.config import FeatureConfig
from features.offline import build_features
from features.spec import HANDBOOK_COLUMNS
from fraudstream.errors import InputError

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = Path(__file__).resolve().parent / "results" / "features_oracle.json"
#: Golden values were computed by pandas with float amounts; ours from integer cents.
TOLERANCE = 1e-6


def canonical_from_handbook(raw: pd.DataFrame) -> pd.DataFrame:
    """The handbook's columns mapped to Transaction field names (+ is_fraud)."""
    return pd.DataFrame(
        {
            "transaction_id": raw["TRANSACTION_ID"].astype(str),
            "user_id": raw["CUSTOMER_ID"].astype(str),
            "merchant_id": raw["TERMINAL_ID"].astype(str),
            "amount": raw["TX_AMOUNT"].astype(float),
            "timestamp": pd.to_datetime(raw["TX_DATETIME"]).dt.tz_localize("UTC"),
            "is_fraud": raw["TX_FRAUD"].astype(int),
        }
    )


def run_oracle(shared: Path) -> dict[str, Any]:
    folder = shared / "datasets" / "handbook-sim"
    tx_files = sorted(folder.glob("transactions_*.parquet"))
    golden_files = sorted(folder.glob("features_golden_*.parquet"))
    if not tx_files or not golden_files:
        raise InputError(f"no transactions_*.parquet / features_golden_*.parquet under {folder}; pass --shared DIR")
    raw = pd.concat([pd.read_parquet(f) for f in tx_files], ignore_index=True)
    golden = pd.concat([pd.read_parquet(f) for f in golden_files], ignore_index=True)
    canonical = canonical_from_handbook(raw)
    started = time.perf_counter()
    features = build_features(canonical, None, FeatureConfig())
    seconds = time.perf_counter() - started
    ours = features.set_index("transaction_id").loc[golden["TRANSACTION_ID"].astype(str)]
    mismatches: dict[str, int] = {}
    worst: dict[str, float] = {}
    for book, mine in HANDBOOK_COLUMNS.items():
        expected = golden[book].to_numpy(dtype=np.float64)
        got = ours[mine].to_numpy(dtype=np.float64)
        diff = np.abs(expected - got)
        mismatches[book] = int((~np.isclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE)).sum())
        worst[book] = float(diff.max()) if len(diff) else 0.0
    return {
        "rows_built": len(features),
        "golden_rows_compared": len(golden),
        "offline_seconds": round(seconds, 2),
        "offline_rows_per_s": round(len(features) / seconds),
        "tolerance": TOLERANCE,
        "mismatches": mismatches,
        "total_mismatches": sum(mismatches.values()),
        "max_abs_diff": worst,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared folder (default ../shared)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        report = run_oracle(args.shared)
    except InputError as exc:
        print(f"features_oracle: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for column, count in report["mismatches"].items():
        print(f"{column:40s} mismatches {count:6d}  max |diff| {report['max_abs_diff'][column]:.3g}")
    print(
        f"rows {report['rows_built']} in {report['offline_seconds']} s ({report['offline_rows_per_s']} rows/s); "
        f"golden rows compared {report['golden_rows_compared']}; total mismatches {report['total_mismatches']}"
    )
    return 0 if report["total_mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
