"""The report's plots (matplotlib Agg): PR and ROC curves, alerts vs frauds per day, CP@k per day, score histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_plots(scores: pd.DataFrame, days: pd.DataFrame, folder: Path, k: int = 100) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    scored = scores[scores["score"].notna()]
    groups = [("all", scored)] + [(f"fold {int(f) + 1}", g) for f, g in scored.groupby("fold", sort=True)]
    written = []

    fig, (pr_ax, roc_ax) = plt.subplots(1, 2, figsize=(12, 5))
    for name, group in groups:
        y, s = group["label"].to_numpy(), group["score"].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        width = 2.2 if name == "all" else 1.0
        precision, recall, _ = precision_recall_curve(y, s)
        pr_ax.plot(recall, precision, label=name, linewidth=width)
        fpr, tpr, _ = roc_curve(y, s)
        roc_ax.plot(fpr, tpr, label=name, linewidth=width)
    pr_ax.set(title="Precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (pr_ax, roc_ax):
        ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, folder / "pr_roc.png"))

    fig, ax = plt.subplots(figsize=(12, 4.5))
    x = days.index
    ax.plot(x, days["alerts"], label="alerts per day", color="tab:red")
    ax.plot(x, days["frauds"], label="frauds per day", color="tab:blue")
    ax.plot(x, days["true_alerts"], label="alerted frauds per day", color="tab:green")
    ax.set(title="Alerts against frauds per day", ylabel="transactions")
    ax.legend()
    fig.autofmt_xdate()
    written.append(_save(fig, folder / "alerts_per_day.png"))

    fig, ax = plt.subplots(figsize=(12, 4.5))
    column = f"card_precision_at_{k}"
    ax.plot(x, days[column], marker=".", label=f"card precision@{k}")
    ax.axhline(float(days[column].mean()), color="grey", linestyle="--", label=f"mean {days[column].mean():.3f}")
    ax.set(title=f"Card precision@{k} per day (cards caught earlier removed)", ylabel="precision", ylim=(0, None))
    ax.legend()
    fig.autofmt_xdate()
    written.append(_save(fig, folder / "card_precision_per_day.png"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = [float(b) for b in np.linspace(0.0, 1.0, 51)]
    for label, color, name in ((0, "tab:blue", "legitimate"), (1, "tab:red", "fraud")):
        values = scored.loc[scored["label"] == label, "score"]
        if len(values):
            ax.hist(values, bins=bins, color=color, alpha=0.55, density=True, label=f"{name} ({len(values):,})")
    ax.set(title="Score distribution by label", xlabel="score", ylabel="density (log)", yscale="log")
    ax.legend()
    written.append(_save(fig, folder / "score_distribution.png"))
    return written


def write_drift_plot(drift: pd.DataFrame, folder: Path, psi_threshold: float) -> list[Path]:
    """PSI of the scores against the training reference and the alert rate, per day (backtest/drift_days.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if drift.empty:
        return []
    fig, (psi_ax, rate_ax) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
    psi_ax.plot(drift.index, drift["psi_score"], marker=".", color="tab:purple", label="PSI of the scores")
    psi_ax.axhline(psi_threshold, color="tab:red", linestyle="--", label=f"threshold {psi_threshold:g} (retrain)")
    psi_ax.set(title="Score drift per day against the training reference", ylabel="PSI", ylim=(0, None))
    psi_ax.legend()
    rate_ax.plot(drift.index, drift["alert_rate"], marker=".", color="tab:orange", label="alerts / scored")
    rate_ax.set(title="Alert rate per day", ylabel="alert rate", ylim=(0, None))
    rate_ax.legend()
    fig.autofmt_xdate()
    return [_save(fig, folder / "drift_per_day.png")]


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
