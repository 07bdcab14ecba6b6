"""TrainingConfig: one frozen object that selects every preprocessing, imbalance, model and protocol choice.

Loadable from YAML (`fraudstream train --config file.yaml`); an unknown or malformed key is one ConfigError line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fraudstream.errors import ConfigError

ALL_MODELS = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting", "mlp", "stack")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrequentialConfig(_Frozen):
    """The handbook's walk-forward protocol: train, wait for the labels, assess; one fold per test window."""

    train_days: int = Field(default=7, ge=1, description="days of each fold's training window")
    delay_days: int = Field(default=7, ge=0, description="days between training and test window (the label delay)")
    test_days: int = Field(default=7, ge=1, description="days of each fold's test window")
    n_folds: int = Field(default=4, ge=1, description="folds, the latest ending at `anchor`'s window")
    anchor: str | None = Field(default=None, description="start of the latest test window (ISO date); unset: the "
                               "last full window in the data")
    drop_known_compromised: bool = Field(default=True, description="the handbook's rule: cards with a fraud known "
                                         "by the test day are removed from it")


class TrainingConfig(_Frozen):
    """Defaults: the handbook protocol, all models, standardised features, no resampling."""

    # preprocessing
    dedup: bool = Field(default=True, description="cleaning: keep the first row of each repeated transaction id")
    impute: bool = Field(default=True, description="fill missing or infinite feature values with the training means")
    clip_quantile: float | None = Field(default=None, gt=0.0, lt=0.5, description="clip each column to its training "
                                        "[q, 1 - q] quantiles; unset: no clipping")
    standardise: bool = Field(default=True, description="scale each column to zero mean, unit variance (training "
                              "rows)")
    log_heavy_tails: bool = Field(default=False, description="sign(x) * log1p(abs(x)) on every column whose training "
                                  "values leave [-1, 1], after imputation and before clipping and standardising; "
                                  "stored with the preprocessor, so the streamer and the API apply it")
    categorical_encoding: Literal["none", "onehot", "label"] = Field(default="none", description="encoding of "
                                                                     "`categorical_columns` (evaluation only: the "
                                                                     "streamer cannot compute them, so not published)")
    categorical_columns: tuple[str, ...] = Field(default=(), description="raw-frame columns encoded and appended as "
                                                 "extra features")
    features: tuple[str, ...] | None = Field(default=None, description="the feature columns the models use (the "
                                             "ablation's `features_kept`); unset: every features.spec column")
    # imbalance
    imbalance: Literal["none", "undersample", "smote", "class_weight"] = Field(
        default="none", description="class imbalance: undersample the majority, SMOTE the minority (training rows "
        "only) or weight the classes in the loss")
    undersample_ratio: float = Field(default=1.0, gt=0.0, le=1.0, description="with undersample: minority / "
                                     "majority after undersampling")
    # selection and tuning
    rfe_features: int | None = Field(default=None, ge=1, description="recursive feature elimination down to this "
                                     "many columns on each fold's training rows (listed in report.md); unset: all")
    grid_search: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="model -> {parameter: [values]}: a grid search per fold, scored by AP over "
        "time-ordered CV splits")
    grid_cv_folds: int = Field(default=3, ge=2, description="the grid search's time-series CV splits "
                               "(scikit-learn's TimeSeriesSplit)")
    # models
    models: tuple[str, ...] = Field(default=ALL_MODELS, description="models to train and evaluate: "
                                    + ", ".join(ALL_MODELS))
    model_params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="model -> constructor "
                                                    "parameters (models/: FraudMLP, StackingEnsemble, scikit-learn)")
    stack_scorer_model: str = Field(default="random_forest", description="the trained model published as the "
                                    "streamer's `stack` scorer; unset: random_forest if trained (tune's choice), "
                                    "else stack, else the first non-MLP model")
    scorer: Literal["mlp", "stack", "blend"] | None = Field(default=None, description="the scoring policy's scorer "
                                                            "(models/policy.py); unset: blend when the MLP and the "
                                                            "stack slot are both trained, else the one that is")
    blend_mlp_weight: float = Field(default=0.25, ge=0.0, le=1.0, description="the blend's MLP weight (w * mlp + "
                                    "(1 - w) * stack); its threshold is calibrated for this weight")
    # protocol and thresholds
    protocol: Literal["prequential", "stratified_80_20", "split_70_15_15"] = Field(
        default="prequential", description="evaluation: the handbook's walk-forward folds or the seeds' random "
        "splits")
    prequential: PrequentialConfig = Field(default=PrequentialConfig(), description="the walk-forward folds "
                                           "(below)")
    threshold_policy: Literal["alert_budget", "f1", "fixed"] = Field(default="alert_budget", description="how each "
                                                                     "model's alert threshold is chosen")
    alerts_per_day: float = Field(default=100.0, gt=0.0, description="with alert_budget: alerts a day on the "
                                  "calibration scores")
    fixed_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="with fixed: the threshold")
    card_precision_k: int = Field(default=100, ge=1, description="k of card precision@k per day")
    drift_top_features: int = Field(default=5, ge=0, description="drift reference stored with the model "
                                    "(streamer/drift.py): this many features, by model importance")
    drift_bins: int = Field(default=10, ge=2, le=100, description="the drift reference's quantile bins of the final "
                            "training rows")
    seed: int = Field(default=0, description="every random choice: splits, resampling, model initialisation")

    @model_validator(mode="before")
    @classmethod
    def _default_stack_slot(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stack_scorer_model") is None:
            models = tuple(data.get("models") or ALL_MODELS)
            others = [m for m in models if m != "mlp"]
            slot = "random_forest" if "random_forest" in models else ("stack" if "stack" in models else None)
            data = {**data, "stack_scorer_model": slot or (others[0] if others else "random_forest")}
        return data

    @property
    def policy_scorer(self) -> str:
        """The scorer of the published policy: `scorer`, or the default rule above."""
        if self.scorer is not None:
            return self.scorer
        has_mlp, has_stack = "mlp" in self.models, self.stack_scorer_model in self.models
        return "blend" if has_mlp and has_stack else ("mlp" if has_mlp else "stack")

    def model_post_init(self, __context: Any) -> None:
        unknown = [m for m in self.models if m not in ALL_MODELS]
        if unknown:
            raise ValueError(f"unknown models {unknown}; choose from {', '.join(ALL_MODELS)}")
        if not self.models:
            raise ValueError("models must name at least one model")
        if self.stack_scorer_model not in ALL_MODELS or self.stack_scorer_model == "mlp":
            raise ValueError("stack_scorer_model must be a non-MLP model name")
        needs = {"mlp": ("mlp",), "stack": (self.stack_scorer_model,), "blend": ("mlp", self.stack_scorer_model)}
        missing = [m for m in needs[self.scorer] if m not in self.models] if self.scorer else []
        if missing:
            raise ValueError(f"scorer {self.scorer} needs {', '.join(missing)} in models")


def _type_name(annotation: Any) -> str:
    """A field's type as the table shows it: `int or unset` for an optional one (no `|`, which splits a cell)."""
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    if text.startswith("Optional[") and text.endswith("]"):
        return text[len("Optional["):-1] + " or unset"
    return text.replace(" | None", " or unset")


def describe_config() -> str:
    """Every training-config key as a Markdown table: key, type, default, meaning (`fraudstream train
    --describe-config`, and the README's table, which a test keeps equal to this)."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    sections: list[tuple[str, type[BaseModel]]] = [("", TrainingConfig), ("prequential.", PrequentialConfig)]
    for prefix, model in sections:
        for name, info in model.model_fields.items():
            if info.annotation is PrequentialConfig:
                continue
            default = info.get_default(call_default_factory=True)
            shown = "unset" if default is None else json.dumps(default if not isinstance(default, tuple) else
                                                               list(default))
            kind = _type_name(info.annotation)
            rows.append(f"| `{prefix}{name}` | `{kind}` | `{shown}` | {info.description} |")
    return "\n".join(rows) + "\n"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def training_config(data: dict[str, Any] | None = None) -> TrainingConfig:
    try:
        return TrainingConfig(**(data or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid training config: {_first_error(exc)}") from None


def load_training_config(path: Path | None) -> TrainingConfig:
    """The config in a YAML file (None: all defaults)."""
    if path is None:
        return TrainingConfig()
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"training config {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"training config {path} must be a YAML mapping of keys to values")
    if data is not None and data.get("kind") == "fraudstream-tune":  # `fraudstream tune`'s tune.json: its choice
        data = data.get("training_config")
        if not isinstance(data, dict):
            raise ConfigError(f"tune result {path} has no training_config mapping; run `fraudstream tune` again")
    try:
        return TrainingConfig(**(data or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid training config {path}: {_first_error(exc)}") from None
