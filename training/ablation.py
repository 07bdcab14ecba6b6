"""Feature-group ablation on the validation folds: the chosen candidate retrained with each group of
features.spec columns left out, assessed like `fraudstream tune` (the book's protocol, mean ± std over the folds).

A group is worth keeping when leaving it out lowers the mean average precision; `verdict` is `drop` only when
leaving it out raises AP on every fold (a mean gain alone is within the folds' noise on handbook-sim). A dropped group
is dropped by config: the training config's `features` list (the streamer still computes the whole vector and the
published bundle picks its `used_features` columns).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from features.spec import CHANNELS, MEAN_WINDOWS, MERCHANT_WINDOWS, USER_WINDOWS
from training.config import TrainingConfig

Say = Callable[[str], None]

#: Groups of features.spec.FEATURE_NAMES, each a family of columns that one idea defines; together every column.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "amount": ("amount", "log_amount"),
    "time_of_day_week": ("hour_sin", "hour_cos", "is_weekend", "is_night"),
    "channel_category_flags": (
        *(f"channel_{c}" for c in CHANNELS),
        "channel_missing",
        "category_bucket",
        "category_missing",
        "device_missing",
        "country_missing",
    ),
    "previous_transaction": (
        "seconds_since_last",
        "first_transaction",
        "amount_change_vs_last",
        "amount_ratio_vs_last",
    ),
    "amount_vs_windows": tuple(n for w, _ in MEAN_WINDOWS for n in (f"amount_ratio_mean_{w}", f"amount_zscore_{w}")),
    "window_counts": tuple(f"count_{w}" for w, _ in USER_WINDOWS),
    "window_means": tuple(f"mean_amount_{w}" for w, _ in USER_WINDOWS),
    "window_max_min": tuple(n for w, _ in USER_WINDOWS for n in (f"max_amount_{w}", f"min_amount_{w}")),
    "location": ("dist_prev_km", "dist_home_km", "speed_kmh", "coords_missing"),
    "novelty": ("new_merchant", "new_category", "new_device", "distinct_merchants_1d"),
    "merchant_counts": tuple(f"merchant_count_{w}" for w, _ in MERCHANT_WINDOWS),
    "merchant_risk": tuple(f"merchant_risk_{w}" for w, _ in MERCHANT_WINDOWS),
}

_METRICS = ("average_precision", "roc_auc")


def ablation_models(cfg: TrainingConfig) -> tuple[str, tuple[str, ...]]:
    """The scorer of the config's policy and the models it needs."""
    scorer = cfg.policy_scorer
    needs = {"mlp": ("mlp",), "stack": (cfg.stack_scorer_model,), "blend": ("mlp", cfg.stack_scorer_model)}
    return scorer, needs[scorer]


def ablate(
    data: Any,
    splits: list[Any],
    cfg: TrainingConfig,
    *,
    groups: dict[str, tuple[str, ...]] | None = None,
    say: Say = lambda _m: None,
) -> dict[str, Any]:
    """Every group left out in turn (and none), the config's policy scorer refitted on each validation fold."""
    from training.evaluation import metrics
    from training.pipeline import _scores, fit_fold
    from training.tune import _book, _row

    groups = FEATURE_GROUPS if groups is None else groups
    scorer, models = ablation_models(cfg)
    run_cfg = cfg.model_copy(update={"models": models, "grid_search": {}})
    k = cfg.card_precision_k
    variants: list[tuple[str, tuple[str, ...]]] = [("all features", ())]
    for group, cols in groups.items():
        present = tuple(c for c in cols if c in data.names)
        if present:
            variants.append((group, present))
    rows: list[dict[str, Any]] = []
    for i, (group, dropped) in enumerate(variants):
        say(f"ablation {i + 1}/{len(variants)}: {'all features' if not dropped else 'without ' + group}")
        keep = [j for j, n in enumerate(data.names) if n not in dropped]
        sub = dataclasses.replace(data, X=data.X[:, keep], names=tuple(data.names[j] for j in keep))
        began = time.perf_counter()
        folds: list[dict[str, float]] = []
        parts: dict[str, list[float]] = {m: [] for m in models}
        fitted_names: tuple[str, ...] | None = None
        for split in splits:
            fitted = fit_fold(sub, split.train, run_cfg)
            fitted_names = fitted.names
            raw = _scores(fitted, sub, split.test)
            score = _policy_score(raw, scorer, cfg)
            y, days, cards = data.y[split.test], data.days[split.test], data.cards[split.test]
            folds.append(_book(metrics(y, score, 0.5, days, cards, k), k))
            for m in models:
                parts[m].append(_book(metrics(y, raw[m], 0.5, days, cards, k), k)["average_precision"])
        name = "all features" if not dropped else f"without {group}"
        row = _row(name, scorer, "+".join(models), {}, None, folds)
        row |= {
            "group": None if not dropped else group,
            "dropped": list(dropped),
            "n_features": len(fitted_names or ()),
            "fitted_features": list(fitted_names or ()),
            "component_average_precision": {m: float(np.mean(v)) for m, v in parts.items()},
            "fit_s": time.perf_counter() - began,
        }
        rows.append(row)
        say(f"ablation {name}: AP {row['average_precision']['mean']:.4f} AUC {row['roc_auc']['mean']:.4f}")
    base = rows[0]
    for row in rows:
        for key in (*_METRICS, f"card_precision_at_{k}"):
            deltas = np.array([f[key] - b[key] for f, b in zip(row["folds"], base["folds"], strict=True)])
            row[f"delta_{key}"] = {
                "mean": float(deltas.mean()),
                "std": float(deltas.std(ddof=1)) if len(deltas) > 1 else float("nan"),
            }
        ap_gain = np.array(
            [f["average_precision"] - b["average_precision"] for f, b in zip(row["folds"], base["folds"], strict=True)]
        )
        row["folds_improved_without"] = int(np.sum(ap_gain > 0))
        row["verdict"] = "-" if row["group"] is None else ("drop" if np.all(ap_gain > 0) else "keep")
    dropped_all = {c for r in rows if r["verdict"] == "drop" for c in r["dropped"]}
    return {
        "candidate_scorer": scorer,
        "models": list(models),
        "model_params": {m: cfg.model_params.get(m, {}) for m in models},
        "blend_mlp_weight": cfg.blend_mlp_weight if scorer == "blend" else None,
        "rule": "keep a group unless leaving it out raises AP on every validation fold",
        "groups": {g: list(c) for g, c in groups.items()},
        "features_kept": [n for n in data.names if n not in dropped_all],
        "table": rows,
    }


def _policy_score(raw: dict[str, np.ndarray], scorer: str, cfg: TrainingConfig) -> np.ndarray:
    if scorer == "mlp":
        return raw["mlp"]
    if scorer == "stack":
        return raw[cfg.stack_scorer_model]
    w = cfg.blend_mlp_weight
    return np.asarray(w * raw["mlp"] + (1.0 - w) * raw[cfg.stack_scorer_model])


def markdown(ablation: dict[str, Any]) -> list[str]:
    from training.tune import _cell

    rows = ablation["table"]
    k = next((key for key in rows[0] if key.startswith("card_precision_at_")), "card_precision_at_100")
    what = ablation["candidate_scorer"]
    if what == "blend":
        what = f"blend {ablation['blend_mlp_weight']:g} x mlp + {ablation['models'][1]}"
    lines = [
        "## Feature ablation on the validation folds",
        "",
        f"- candidate: {what} ({', '.join(f'{m} {p}' for m, p in ablation['model_params'].items())})",
        f"- rule: {ablation['rule']}; Δ = mean ± std over the folds of (without the group - all features)",
        "",
        f"| variant | features | AP | AUC | CP@{k.rsplit('_', 1)[-1]} | Δ AP | Δ AUC | Δ CP | folds better without "
        "| verdict | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['candidate']} | {row['n_features']} | {_cell(row.get('average_precision'))} | "
            f"{_cell(row.get('roc_auc'))} | {_cell(row.get(k))} | {_signed(row['delta_average_precision'])} | "
            f"{_signed(row['delta_roc_auc'])} | {_signed(row[f'delta_{k}'])} | "
            f"{row['folds_improved_without']}/{len(row['folds'])} | {row['verdict']} | {row['fit_s']:.1f} |"
        )
    described = "; ".join(g + ": " + ", ".join(c) for g, c in ablation["groups"].items())
    lines += ["", f"Groups: {described}.", ""]
    return lines


def _signed(stat: dict[str, float]) -> str:
    mean, std = stat["mean"], stat["std"]
    return f"{mean:+.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else "")
