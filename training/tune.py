"""Model selection on the validation weeks, as the handbook does: every candidate scorer and hyperparameter setting
is trained on each validation fold's training week and assessed on its test week under the book's protocol (known
compromised cards removed from each assessed day; CP@k per day with earlier-caught cards removed); the pick is the
highest mean average precision over the folds.

Nothing at or after `validation_end` is read: the history is cut there before the features are built (on
handbook-sim the default 2018-08-01 keeps the book's test weeks out). The result is one JSON file that
`fraudstream train --config` takes (`training_config` inside it) plus a markdown table.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fraudstream.errors import ConfigError, InputError
from training.config import ALL_MODELS, TrainingConfig

TUNE_KIND = "fraudstream-tune"
#: The handbook's validation period ends here (its test weeks start 2018-08-08; 08-01..07 is their label delay).
BOOK_VALIDATION_END = "2018-08-01"
#: Small enough for minutes on 2 cores (handbook-sim, 4 folds: these fits took 4.3 min in all on the loaded 2-core
#: machine; a wider grid measured there ranked these settings first in their family): model -> parameter grid.
DEFAULT_GRID: dict[str, Any] = {
    "models": {
        "mlp": {"epochs": [20], "batch_size": [256]},
        "gradient_boosting": {"learning_rate": [0.05, 0.1], "max_depth": [6]},
        "random_forest": {"n_estimators": [100], "max_depth": [20]},
        "logistic_regression": {"C": [0.1]},
    },
    "blend_weights": [0.25, 0.5, 0.75],
}

Say = Callable[[str], None]


@dataclass
class Candidate:
    model: str  # a training model name
    params: dict[str, Any]
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    fold_scores: list[np.ndarray] = field(default_factory=list)
    fit_seconds: float = 0.0

    @property
    def name(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.model}({args})"


def load_grid(path: Path | None) -> dict[str, Any]:
    """The grid file (YAML/JSON: models: {model: {param: [values]}} or {model: [{params}, ...]}; blend_weights)."""
    if path is None:
        return DEFAULT_GRID
    try:
        grid = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"grid file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"grid file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(grid, dict) or not isinstance(grid.get("models"), dict) or not grid["models"]:
        raise ConfigError(f"grid file {path} needs 'models:' mapping model names to parameter grids")
    unknown = sorted(set(grid) - {"models", "blend_weights"})
    if unknown:
        raise ConfigError(f"grid file {path}: unknown key(s) {', '.join(unknown)}; use models and blend_weights")
    return grid


def expand(grid: dict[str, Any]) -> list[Candidate]:
    """One candidate per model and parameter setting."""
    from sklearn.model_selection import ParameterGrid

    out = []
    for model, spec in grid["models"].items():
        if model not in ALL_MODELS:
            raise ConfigError(f"grid: unknown model '{model}'; choose from {', '.join(ALL_MODELS)}")
        spec = spec or {}
        if isinstance(spec, dict) and not all(isinstance(v, list) for v in spec.values()):
            raise ConfigError(f"grid: every parameter of {model} must be a list of values (e.g. max_depth: [3, 6])")
        settings = [spec] if isinstance(spec, dict) else spec
        try:
            out += [Candidate(model, dict(p)) for p in ParameterGrid(settings)]
        except TypeError as exc:
            raise ConfigError(f"grid for {model}: {exc}") from None
    return out


def validation_history(history: pd.DataFrame, validation_end: pd.Timestamp) -> pd.DataFrame:
    """The history before the end of the validation period: the later weeks are never read."""
    kept = history[history["timestamp"] < validation_end]
    if kept.empty:
        raise InputError(f"no transactions before the validation end {validation_end:%Y-%m-%d}")
    return kept.reset_index(drop=True)


def tune(
    history: pd.DataFrame,
    base: TrainingConfig,
    feature_cfg: Any,
    grid: dict[str, Any],
    *,
    validation_end: Any = BOOK_VALIDATION_END,
    ablation: bool = False,
    say: Say = lambda _m: None,
) -> dict[str, Any]:
    """Run every candidate over the validation folds; the result (choice, table, config for training) as a dict.
    With `ablation`, the choice is then refitted with each feature group left out (training/ablation.py)."""
    from training.evaluation import metrics
    from training.pipeline import _scores, feature_dataset, fit_fold, make_splits

    end = pd.Timestamp(validation_end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    p = base.prequential
    anchor = end - pd.Timedelta(days=p.test_days)
    cfg = base.model_copy(
        update={
            "protocol": "prequential",
            "prequential": p.model_copy(update={"anchor": anchor.isoformat(), "drop_known_compromised": True}),
        }
    )
    candidates = expand(grid)
    say("building features")
    data = feature_dataset(validation_history(history, end), cfg, feature_cfg)
    splits = make_splits(data, cfg)
    k = cfg.card_precision_k
    for i, cand in enumerate(candidates):
        say(f"candidate {i + 1}/{len(candidates)}: {cand.name}")
        params = {**cfg.model_params.get(cand.model, {}), **cand.params}
        run_cfg = cfg.model_copy(
            update={"models": (cand.model,), "model_params": {**cfg.model_params, cand.model: params}}
        )
        began = time.perf_counter()
        for split in splits:
            fitted = fit_fold(data, split.train, run_cfg)
            score = _scores(fitted, data, split.test)[cand.model]
            y, days, cards = data.y[split.test], data.days[split.test], data.cards[split.test]
            cand.fold_scores.append(score)
            cand.fold_metrics.append(_book(metrics(y, score, 0.5, days, cards, k), k))
        cand.fit_seconds = time.perf_counter() - began
    rows = []
    for c in candidates:
        rows.append(_row(c.name, "mlp" if c.model == "mlp" else "stack", c.model, c.params, None, c.fold_metrics))
        rows[-1]["fit_s"] = c.fit_seconds
    rows += _blends(candidates, splits, data, grid.get("blend_weights") or [], k)
    rows.sort(key=lambda r: -_finite(r["average_precision"]["mean"]))
    best = rows[0]
    chosen = _training_config(base, best, rows)  # the base's own protocol and anchor: training sees new data
    folds = [{"name": s.name, "train_rows": len(s.train), "assessed_rows": len(s.test)} for s in splits]
    extra: dict[str, Any] = {}
    if ablation:
        from training.ablation import ablate

        extra["ablation"] = ablate(data, splits, chosen, say=say)
    return {
        "kind": TUNE_KIND,
        "selection": {
            "criterion": "mean average precision over the validation folds, the book's protocol",
            "protocol": f"train {p.train_days}, delay {p.delay_days}, assess {p.test_days} days; known compromised "
            f"cards removed from each assessed day; CP@{k} per day with cards caught on earlier days removed",
            "validation_end": end.isoformat(),
            "folds": folds,
            "rows_read": len(data.y),
            "last_row": str(data.timestamps.max()),
        },
        "choice": {k2: best[k2] for k2 in ("candidate", "scorer", "model", "params", "blend_mlp_weight")},
        "streamer_settings": {
            "FRAUD_STREAMER__SCORER": best["scorer"],
            **({"FRAUD_STREAMER__BLEND_MLP_WEIGHT": best["blend_mlp_weight"]} if best["scorer"] == "blend" else {}),
        },
        "training_config": chosen.model_dump(mode="json"),
        "table": rows,
        **extra,
    }


def _book(m: dict[str, float], k: int) -> dict[str, float]:
    keys = ("n", "n_fraud", "roc_auc", "average_precision", f"card_precision_at_{k}")
    return {key: m[key] for key in keys if key in m}


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _row(
    name: str, scorer: str, model: str, params: dict[str, Any], weight: float | None, folds: list[dict[str, float]]
) -> dict[str, Any]:
    """One line of the comparison table: per-fold figures and, per metric, the mean over folds and its std."""
    row: dict[str, Any] = {
        "candidate": name,
        "scorer": scorer,
        "model": model,
        "params": params,
        "blend_mlp_weight": weight,
        "folds": folds,
    }
    for key in folds[0]:
        if key in ("n", "n_fraud"):
            continue
        values = np.array([f[key] for f in folds], dtype=np.float64)
        values = values[np.isfinite(values)]
        row[key] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        }
    return row


def _blends(candidates: list[Candidate], splits: list[Any], data: Any, weights: list[float], k: int) -> list[Any]:
    """The streamer's blend, w * mlp + (1 - w) * stack-slot model, for every MLP x non-MLP pair and weight."""
    from training.evaluation import metrics

    rows = []
    mlps = [c for c in candidates if c.model == "mlp"]
    others = [c for c in candidates if c.model != "mlp"]
    for mlp in mlps:
        for other in others:
            for w in weights:
                folds = []
                for i, split in enumerate(splits):
                    score = w * mlp.fold_scores[i] + (1.0 - w) * other.fold_scores[i]
                    y, days, cards = data.y[split.test], data.days[split.test], data.cards[split.test]
                    folds.append(_book(metrics(y, score, 0.5, days, cards, k), k))
                name = f"blend {w:g} x {mlp.name} + {other.name}"
                params = {"mlp": mlp.params, other.model: other.params}
                row = _row(name, "blend", f"mlp+{other.model}", params, float(w), folds)
                row["fit_s"] = mlp.fit_seconds + other.fit_seconds
                rows.append(row)
    return rows


def _training_config(cfg: TrainingConfig, best: dict[str, Any], rows: list[dict[str, Any]]) -> TrainingConfig:
    """The training config of the choice: its model(s) and parameters; for a single scorer also the best model of
    the other slot (MLP or stack-slot model) when the grid had one, so the published bundle serves every scorer."""
    if best["scorer"] == "blend":
        chosen: dict[str, dict[str, Any]] = dict(best["params"])
    else:
        chosen = {best["model"]: best["params"]}
        partners = [
            r for r in rows if r["scorer"] != "blend" and (r["model"] == "mlp") != (best["model"] == "mlp")
        ]  # rows are sorted best first
        if partners:
            chosen[partners[0]["model"]] = partners[0]["params"]
    params = dict(cfg.model_params)
    params |= {m: {**params.get(m, {}), **p} for m, p in chosen.items()}
    models = tuple(chosen)
    stack_model = next((m for m in models if m != "mlp"), cfg.stack_scorer_model)
    # the scoring policy that `fraudstream train --config tune.json` writes into the manifest (models/policy.py)
    weight = float(best["blend_mlp_weight"]) if best["scorer"] == "blend" else cfg.blend_mlp_weight
    return cfg.model_copy(
        update={"models": models, "model_params": params, "stack_scorer_model": stack_model, "grid_search": {},
                "scorer": best["scorer"], "blend_mlp_weight": weight}
    )


def _cell(stat: dict[str, float] | None) -> str:
    if not stat or not math.isfinite(stat.get("mean", float("nan"))):
        return "-"
    std = stat.get("std", float("nan"))
    return f"{stat['mean']:.3f}" + (f" ± {std:.3f}" if math.isfinite(std) else "")


def markdown(result: dict[str, Any]) -> str:
    sel, choice = result["selection"], result["choice"]
    k = next((key for key in result["table"][0] if key.startswith("card_precision_at_")), "card_precision_at_100")
    lines = [
        "# Model selection on the validation weeks",
        "",
        f"- criterion: {sel['criterion']}",
        f"- protocol (`book`): {sel['protocol']}",
        f"- validation folds (assessed weeks): {', '.join(f['name'] for f in sel['folds'])}; nothing read at or "
        f"after {sel['validation_end'][:10]} (last row read {sel['last_row']})",
        f"- **choice: {choice['candidate']}** (scorer `{choice['scorer']}`); streamer settings: "
        + ", ".join(f"`{name}={value}`" for name, value in result["streamer_settings"].items()),
        "- train with it: `fraudstream train --history FILE --config tune.json`",
        "",
        f"| rank | candidate | scorer | AP | AUC | CP@{k.rsplit('_', 1)[-1]} | fit s (4 folds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(result["table"]):
        fit = row.get("fit_s")
        lines.append(
            f"| {i + 1} | {row['candidate']} | {row['scorer']} | {_cell(row.get('average_precision'))} | "
            f"{_cell(row.get('roc_auc'))} | {_cell(row.get(k))} | {'-' if fit is None else f'{fit:.1f}'} |"
        )
    lines += ["", "Figures: mean ± sample std over the validation folds, the book's protocol.", ""]
    if "ablation" in result:
        from training.ablation import markdown as ablation_markdown

        lines += ablation_markdown(result["ablation"])
    return "\n".join(lines)


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


def write_result(result: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """tune.json (a training config for `fraudstream train --config`, with the choice and the table) and tune.md."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "tune.json", folder / "tune.md"
    json_path.write_text(json.dumps(_clean(result), indent=2) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path
