"""TrainingConfig: one frozen object that selects every preprocessing, imbalance, model and protocol choice.

Loadable from YAML (`fraudstream train --config file.yaml`); an unknown or malformed key is one ConfigError line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fraudstream.errors import ConfigError

ALL_MODELS = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting", "mlp", "stack")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrequentialConfig(_Frozen):
    train_days: int = Field(default=7, ge=1)
    delay_days: int = Field(default=7, ge=0)
    test_days: int = Field(default=7, ge=1)
    n_folds: int = Field(default=4, ge=1)
    anchor: str | None = None  # start of the latest test window (ISO date); default: last full window in the data
    drop_known_compromised: bool = True  # the handbook's rule: cards with a fraud known by the test day are removed


class TrainingConfig(_Frozen):
    """Defaults: the handbook protocol, all models, standardised features, no resampling."""

    # preprocessing
    dedup: bool = True
    impute: bool = True
    clip_quantile: float | None = Field(default=None, gt=0.0, lt=0.5)
    standardise: bool = True
    # sign(x) * log1p(|x|) on every column whose training values leave [-1, 1] (amounts, counts, seconds, km,
    # ratios, z-scores), after imputation and before clipping/standardising; stored with the preprocessor
    log_heavy_tails: bool = False
    categorical_encoding: Literal["none", "onehot", "label"] = "none"
    categorical_columns: tuple[str, ...] = ()  # raw-frame columns encoded and appended as extra features
    features: tuple[str, ...] | None = None  # None: every features.spec.FEATURE_NAMES column
    # imbalance
    imbalance: Literal["none", "undersample", "smote", "class_weight"] = "none"
    undersample_ratio: float = Field(default=1.0, gt=0.0, le=1.0)  # minority / majority after undersampling
    # selection and tuning
    rfe_features: int | None = Field(default=None, ge=1)
    grid_search: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)  # model -> param grid
    grid_cv_folds: int = Field(default=3, ge=2)
    # models
    models: tuple[str, ...] = ALL_MODELS
    model_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # which trained model is published as the streamer's `stack` scorer; unset: random_forest if trained (the
    # `fraudstream tune` choice on handbook-sim's validation weeks), else stack, else the first non-MLP model
    stack_scorer_model: str = "random_forest"
    # the scoring policy written to the manifest (models/policy.py): the scorer the streamer, the backtest and the
    # API serve, and the blend weight its threshold is calibrated for. scorer unset: blend when the MLP and the
    # stack slot are both trained (tune's choice: 0.25 x mlp + random_forest), else the one that is
    scorer: Literal["mlp", "stack", "blend"] | None = None
    blend_mlp_weight: float = Field(default=0.25, ge=0.0, le=1.0)
    # protocol and thresholds
    protocol: Literal["prequential", "stratified_80_20", "split_70_15_15"] = "prequential"
    prequential: PrequentialConfig = PrequentialConfig()
    threshold_policy: Literal["alert_budget", "f1", "fixed"] = "alert_budget"
    alerts_per_day: float = Field(default=100.0, gt=0.0)
    fixed_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    card_precision_k: int = Field(default=100, ge=1)
    # drift reference stored with the model (streamer/drift.py): this many features, by model importance, and the
    # policy's scores, binned at this many quantiles of the final training rows
    drift_top_features: int = Field(default=5, ge=0)
    drift_bins: int = Field(default=10, ge=2, le=100)
    seed: int = 0

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
