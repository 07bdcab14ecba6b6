"""The report folder: scores.parquet, report.json, report.md (headline table per fold and overall) and the plots."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.metrics import book_metrics, daily, mean_and_spread, window_metrics

SCORE_COLUMNS = (
    "transaction_id",
    "user_id",
    "timestamp",
    "score",
    "alerted",
    "model_version",
    "label",
    "fold",
    "known_compromised",
)
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
BOOK_HEADLINE = (
    ("AUC", "roc_auc"),
    ("AP", "average_precision"),
    ("CP@100", "card_precision_at_100"),
    ("CP@100 ceiling", "card_precision_at_100_ceiling"),
)
PROTOCOLS = {
    "all": "every assessed transaction; CP@100 per day with cards caught on earlier days removed (over the whole "
    "assessed range for the overall row)",
    "book": "the handbook's: each assessed day without the cards already known to be compromised (a fraud in the "
    "fold's training window, or a later one whose label has arrived by that day); CP@100 per day with cards "
    "caught on earlier days of the fold removed; the overall figure is the mean over folds with its spread "
    "(sample std); the ceiling is CP@100 with the labels as scores",
}


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
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Metrics per fold (with the offline batch-path AP when the folds were trained here) and overall, both on all
    transactions; and the book's protocol per fold with the mean and spread over folds."""
    rows = []
    book_rows = []
    for fold in folds:
        part = scores[scores["fold"] == fold["index"]]
        m: dict[str, Any] = window_metrics(part, fold["threshold"], k) if len(part) else {"n": 0.0}
        offline = fold.get("offline_metrics") or {}
        if offline:
            m["offline_average_precision"] = offline.get("average_precision")
            m["offline_roc_auc"] = offline.get("roc_auc")
            m["ap_difference"] = abs(m.get("average_precision", float("nan")) - offline["average_precision"])
        book = book_metrics(part, k) if len(part) and "known_compromised" in part else {"n": 0.0}
        book_rows.append(book)
        rows.append({**fold, "metrics": m, "book_metrics": book})
    overall = window_metrics(scores, float("nan"), k)
    overall.pop("threshold", None)
    book_summary = {"per_fold": book_rows, "over_folds": mean_and_spread([b for b in book_rows if b.get("n")])}
    return rows, overall, book_summary


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
    lines += [
        "",
        "## Headline: all transactions",
        "",
        f"Protocol `all`: {PROTOCOLS['all']}.",
        "",
        "| fold | window | n | frauds | " + " | ".join(h for h, _, _ in HEADLINE) + " |",
    ]
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
        *_book_lines(report),
        "",
        "![PR and ROC](pr_roc.png)",
        "![alerts per day](alerts_per_day.png)",
        "![card precision per day](card_precision_per_day.png)",
        "![score distribution](score_distribution.png)",
        "",
        *_drift_lines(report),
    ]
    return "\n".join(lines)


def _drift_lines(report: dict[str, Any]) -> list[str]:
    d = report.get("drift")
    if not d or not d.get("days"):
        return []
    if not d.get("days_with_reference"):
        return ["## Drift", "", "The models scored here carry no drift reference (published before drift was "
                "watched): no PSI; the alert rate per day is in drift_daily.csv.", ""]  # fmt: skip
    psi_max = "-" if d.get("psi_max") is None else f"{d['psi_max']:.3f}"
    return [
        "## Drift",
        "",
        f"PSI of each day's scores against the training reference of the model that scored them, and the alert rate "
        f"(drift_daily.csv): {d['days_over_threshold']} of {d['days_with_reference']} days above the threshold "
        f"{d['psi_threshold']:g} (max {psi_max}); the stream checks the same per hour (README \"Drift\").",
        "",
        "![drift per day](drift_per_day.png)",
        "",
    ]


def _book_lines(report: dict[str, Any]) -> list[str]:
    """The book-protocol table: per fold, then the mean over folds with its spread."""
    book = report.get("book") or {}
    if not book.get("over_folds"):
        return []
    lines = [
        "## Headline: the book's protocol",
        "",
        f"Protocol `book`: {PROTOCOLS['book']}.",
        "",
        "| fold | window | n | frauds | removed rows / cards | " + " | ".join(h for h, _ in BOOK_HEADLINE) + " |",
        "|---" * (len(BOOK_HEADLINE) + 5) + "|",
    ]
    for fold in report["folds"]:
        m = fold.get("book_metrics") or {}
        if not m.get("n"):
            continue
        window = f"{fold['test_start'][:10]} .. {_day_before(fold['test_end'])}"
        cells = [_number(m.get(key), 3) for _, key in BOOK_HEADLINE]
        removed = f"{m.get('removed_rows', 0):,.0f} / {m.get('removed_cards', 0):,.0f}"
        lines.append(
            f"| {fold['index'] + 1} | {window} | {int(m['n']):,} | {int(m.get('n_fraud', 0)):,} | {removed} | "
            + " | ".join(cells)
            + " |"
        )
    over = book["over_folds"]
    cells = [_spread(over.get(key)) for _, key in BOOK_HEADLINE]
    n_folds = int(next(iter(over.values()))["folds"])
    lines.append(f"| **mean ± std** | {n_folds} folds | | | | " + " | ".join(cells) + " |")
    return lines


def _number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _spread(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    std = stat.get("std")
    return _number(stat.get("mean"), 3) + ("" if std is None or not math.isfinite(std) else f" ± {std:.3f}")


def summary_lines(report: dict[str, Any], k: int = 100) -> list[str]:
    """The CLI's summary: one line per protocol, each saying which it is."""
    m = {key: v if isinstance(v, float) else float("nan") for key, v in report["overall"].items()}
    lines = [
        f"all transactions ({report['coverage']['assessed']:,}): AUC {m.get('roc_auc', 0):.3f}  "
        f"AP {m.get('average_precision', 0):.3f}  CP@{k} {m.get(f'card_precision_at_{k}', 0):.3f}  "
        f"alerts/day {m.get('alerts_per_day', 0):.1f}"
    ]
    over = (report.get("book") or {}).get("over_folds") or {}
    if over:
        n = int(next(iter(over.values()))["folds"])

        def cell(key: str) -> str:
            stat = over.get(key) or {}
            mean, std = stat.get("mean"), stat.get("std")
            text = _number(mean, 3)
            return text if std is None or not math.isfinite(std) else f"{text}±{std:.3f}"

        lines.append(
            f"book protocol (known compromised cards removed, mean±std over {n} folds): AUC {cell('roc_auc')}  "
            f"AP {cell('average_precision')}  CP@{k} {cell(f'card_precision_at_{k}')} "
            f"(ceiling {cell(f'card_precision_at_{k}_ceiling')})"
        )
    return lines


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


def write_report(
    folder: Path,
    scores: pd.DataFrame,
    report: dict[str, Any],
    k: int = 100,
    *,
    drift_references: Mapping[str, Any] | None = None,
    psi_threshold: float = 0.2,
) -> list[Path]:
    """Write every file of the report; returns their paths. drift_references: version -> DriftReference, for the
    PSI per day (backtest/drift_days.py)."""
    from backtest.drift_days import daily_drift
    from backtest.plots import write_drift_plot, write_plots

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scores.parquet"
    scores.loc[:, list(SCORE_COLUMNS)].to_parquet(path, index=False)
    days = daily(scores, k)
    days.to_csv(folder / "daily.csv")
    written = [path, folder / "daily.csv"]
    written += write_plots(scores, days, folder, k)
    drift = daily_drift(scores, drift_references or {}, str(report.get("run", {}).get("scorer") or "mlp"))
    drift.to_csv(folder / "drift_daily.csv")
    written += [folder / "drift_daily.csv", *write_drift_plot(drift, folder, psi_threshold)]
    watched = drift["psi_score"].notna() if len(drift) else pd.Series(dtype=bool)
    report["drift"] = {"psi_threshold": psi_threshold, "days": len(drift), "days_with_reference": int(watched.sum()),
                       "days_over_threshold": int((drift.loc[watched, "psi_score"] > psi_threshold).sum()),
                       "psi_max": float(drift["psi_score"].max()) if watched.any() else None}  # fmt: skip
    (folder / "report.json").write_text(json.dumps(clean(report), indent=2, default=str) + "\n")
    (folder / "report.md").write_text(markdown(clean(report)))
    return [*written, folder / "report.json", folder / "report.md"]
