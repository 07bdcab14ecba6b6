"""The training report folder: report.json, report.md and plots (ROC, precision-recall, MLP curves, importances)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("roc_auc", "average_precision", "card_precision_at_100", "accuracy", "precision", "recall", "f1",
           "alerts_per_day")


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Training report",
        "",
        f"- rows {report['rows']}, frauds {report['frauds']}",
        f"- data {report['data_range'][0]} .. {report['data_range'][1]}",
        f"- protocol {report['config']['protocol']}, holdout `{report['holdout_id']}`",
        f"- published version: {report.get('version') or '-'} ({report.get('promotion', 'not published')})",
        "",
        "## Mean over folds",
        "",
        "| model | " + " | ".join(COLUMNS) + " | fit s (mean) |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for model, vals in report["mean_metrics"].items():
        secs = [f["fit_seconds"].get(model) for f in report["folds"] if model in f["fit_seconds"]]
        fit = f"{np.mean(secs):.1f}" if secs else "-"
        cells = [f"{vals.get(c, float('nan')):.3f}" for c in COLUMNS]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {fit} |")
    rate = report["frauds"] / max(report["rows"], 1)
    lines += ["", f"Accuracy, precision, recall, F1 and alerts/day are at each model's threshold. With {rate:.2%} "
              f"fraud, flagging nothing is {1 - rate:.2%} accurate: rank models by AP and CP@100, not accuracy.",
              "", "## Folds", ""]
    for fold in report["folds"]:
        aps = ", ".join(f"{m} {v['average_precision']:.3f}" for m, v in fold["metrics"].items())
        lines.append(f"- {fold['name']}: AP {aps}")
    lines += _selected_features(report)
    return "\n".join(lines) + "\n"


def _selected_features(report: dict[str, Any]) -> list[str]:
    """With rfe_features set: the columns RFE kept on each fold's training rows and for the published models."""
    n = report["config"].get("rfe_features")
    if n is None:
        return []
    lines = ["", f"## RFE-selected features ({n} of {len(report['features'])})", ""]
    for fold in report["folds"]:
        lines.append(f"- {fold['name']}: " + ", ".join(fold.get("features", [])))
    if report.get("published_features"):
        lines.append("- published models: " + ", ".join(report["published_features"]))
    return lines


def _plots(report: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    written = []
    last = report["outcomes"][-1]
    fig_roc, ax_roc = plt.subplots(figsize=(5, 5))
    fig_pr, ax_pr = plt.subplots(figsize=(5, 5))
    for model, score in last.scores.items():
        if len(np.unique(last.y)) < 2:
            break
        fpr, tpr, _ = roc_curve(last.y, score)
        precision, recall, _ = precision_recall_curve(last.y, score)
        ax_roc.plot(fpr, tpr, label=model)
        ax_pr.plot(recall, precision, label=model)
    for fig, ax, name, xl, yl in (
        (fig_roc, ax_roc, "roc.png", "false positive rate", "true positive rate"),
        (fig_pr, ax_pr, "precision_recall.png", "recall", "precision"),
    ):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{name[:-4]} ({last.name})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        written.append(name)
    history = report.get("mlp_history")
    if history:
        fig, ax = plt.subplots(figsize=(5, 4))
        for key, values in history.items():
            ax.plot(values, label=key)
        ax.set_xlabel("epoch")
        ax.set_title("MLP training curves")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "mlp_training.png", dpi=90)
        plt.close(fig)
        written.append("mlp_training.png")
    importances = report.get("feature_importances")
    if importances:
        names, values = zip(*sorted(importances.items(), key=lambda kv: kv[1])[-25:], strict=True)
        fig, ax = plt.subplots(figsize=(6, 0.25 * len(names) + 1))
        ax.barh(names, values)
        ax.set_title("feature importances (published stack scorer)")
        fig.tight_layout()
        fig.savefig(folder / "feature_importances.png", dpi=90)
        plt.close(fig)
        written.append("feature_importances.png")
    return written


def write_report(report: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    plots = _plots(report, folder)
    body = {k: v for k, v in report.items() if k != "outcomes"}
    body["plots"] = plots
    (folder / "report.json").write_text(json.dumps(_clean(body), indent=2, default=str))
    (folder / "report.md").write_text(markdown(report))
    return [folder / "report.json", folder / "report.md", *(folder / p for p in plots)]
