"""The report folder: scores.parquet, report.json, report.md (headline table per fold and overall) and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.metrics import daily, window_metrics

SCORE_COLUMNS = ("transaction_id", "user_id", "timestamp", "score", "alerted", "model_version", "label", "fold")
HEADLINE = (
    ("AUC", "roc_auc", 3),
    ("AP", "average_precision", 3),
    ("offline AP", "offline_average_precision", 3),
    ("CP@100", "card_precision_at_100", 3),
    ("precision", "precision", 3),
    ("recall", "recall", 3),
    ("F1", "f1", 3),
    ("alerts/day", "alerts_per_day", 1),
    ("detect h (median)", "detection_hours_median", 1),
    ("detect h (p90)", "detection_hours_p90", 1),
    ("missed / fraud cards", "missed_cards", 0),
)


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def fold_table(
    scores: pd.DataFrame, folds: list[dict[str, Any]], k: int = 100
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Metrics per fold (with the offline batch-path AP when the folds were trained here) and overall."""
    rows = []
    for fold in folds:
        part = scores[scores["fold"] == fold["index"]]
        m: dict[str, Any] = window_metrics(part, fold["threshold"], k) if len(part) else {"n": 0.0}
        offline = fold.get("offline_metrics") or {}
        if offline:
            m["offline_average_precision"] = offline.get("average_precision")
            m["offline_roc_auc"] = offline.get("roc_auc")
            m["ap_difference"] = abs(m.get("average_precision", float("nan")) - offline["average_precision"])
        rows.append({**fold, "metrics": m})
    overall = window_metrics(scores, float("nan"), k)
    overall.pop("threshold", None)
    return rows, overall


def markdown(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [
        f"# Backtest {run['run_id']}",
        "",
        f"- input: `{run['input']}` ({report['data']['transactions']:,} transactions, {report['data']['frauds']:,} "
        f"frauds, {report['data']['first']} .. {report['data']['last']})",
        f"- models: {run['models']}; scorer `{run['scorer']}`; label delay {run['label_delay_days']:g} days",
        f"- assessed: {report['coverage']['assessed']:,} transactions, {report['coverage']['scored']:,} scored "
        f"({report['coverage']['missing']:,} without a score)",
    ]
    for stats in report["replay"]:
        lines.append(
            f"- replay ({stats['mode']}): {stats['events']:,} events ({stats['transactions']:,} transactions, "
            f"{stats['labels']:,} labels) in {stats['seconds'] - stats['model_wait_s']:.1f} s = "
            f"**{stats['events_per_s']:,.0f} events/s** (plus {stats['model_wait_s']:.1f} s waiting for fold models)"
        )
    lines += ["", "## Headline", "", "| fold | window | n | frauds | " + " | ".join(h for h, _, _ in HEADLINE) + " |"]
    lines.append("|---" * (len(HEADLINE) + 4) + "|")
    for fold in report["folds"]:
        window = f"{fold['test_start'][:10]} .. {_day_before(fold['test_end'])}"
        lines.append(_row(str(fold["index"] + 1), window, fold["metrics"]))
    lines.append(_row("**all**", "", report["overall"]))
    lines += [
        "",
        "AP / AUC / CP@100 as training/evaluation.py computes them; precision, recall, F1 and alerts/day from the "
        "alerts the stream raised; *offline AP* = the training module's batch path (offline features, same model) "
        "on the same window; detect h = hours from a card's first fraud in the window to its first alert at or after "
        "it (detected cards only); missed = fraudulent cards never alerted in the window.",
        "",
        "![PR and ROC](pr_roc.png)",
        "![alerts per day](alerts_per_day.png)",
        "![card precision per day](card_precision_per_day.png)",
        "![score distribution](score_distribution.png)",
        "",
    ]
    return "\n".join(lines)


def _day_before(iso: str) -> str:
    return str((pd.Timestamp(iso) - pd.Timedelta(microseconds=1)).date())


def _row(name: str, window: str, m: dict[str, Any]) -> str:
    cells = []
    for _, key, digits in HEADLINE:
        value = m.get(key)
        if key == "missed_cards" and value is not None:
            cells.append(f"{value:.0f} / {m.get('fraud_cards', 0):.0f}")
            continue
        cells.append(
            "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"
        )
    return f"| {name} | {window} | {int(m.get('n', 0)):,} | {int(m.get('n_fraud', 0)):,} | " + " | ".join(cells) + " |"


def write_report(folder: Path, scores: pd.DataFrame, report: dict[str, Any], k: int = 100) -> list[Path]:
    """Write every file of the report; returns their paths."""
    from backtest.plots import write_plots

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scores.parquet"
    scores.loc[:, list(SCORE_COLUMNS)].to_parquet(path, index=False)
    days = daily(scores, k)
    days.to_csv(folder / "daily.csv")
    written = [path, folder / "daily.csv"]
    written += write_plots(scores, days, folder, k)
    (folder / "report.json").write_text(json.dumps(clean(report), indent=2, default=str) + "\n")
    (folder / "report.md").write_text(markdown(clean(report)))
    return [*written, folder / "report.json", folder / "report.md"]
