"""Numeric preprocessing fitted on training rows and applied in one vectorised pass at scoring time.

Mean imputation, an optional signed log1p of heavy-tailed columns, quantile outlier clipping and z-score
standardisation, stored as plain arrays (JSON), never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.errors import ModelError


@dataclass(frozen=True)
class Preprocessor:
    """Column statistics learned on the training rows; `transform` imputes, log-compresses (`log_mask` columns:
    sign(x) * log1p(|x|)), clips and scales in that order."""

    means: np.ndarray  # imputation values (training means, after nothing else)
    clip_low: np.ndarray  # -inf where clipping is off
    clip_high: np.ndarray  # +inf where clipping is off
    center: np.ndarray  # 0 where standardising is off
    scale: np.ndarray  # 1 where standardising is off
    stds: np.ndarray  # training standard deviations (for reasons), always recorded
    log_mask: np.ndarray | None = None  # columns log-compressed after imputation; None: none

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        *,
        impute: bool = True,
        clip_quantile: float | None = None,
        standardise: bool = True,
        log_heavy_tails: bool = False,
    ) -> Preprocessor:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ModelError("cannot fit preprocessing on an empty feature matrix; check the training window")
        with np.errstate(all="ignore"):
            means = np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0)
        means = np.where(np.isfinite(means), means, 0.0)
        filled = np.where(np.isfinite(X), X, means)
        n = X.shape[1]
        log_mask = None
        if log_heavy_tails:  # every column whose training values leave [-1, 1] (not flags, cyclic hours, risks)
            log_mask = np.abs(filled).max(axis=0) > 1.0
            filled = np.where(log_mask, _signed_log1p(filled), filled)
        if clip_quantile is not None:
            low = np.quantile(filled, clip_quantile, axis=0)
            high = np.quantile(filled, 1.0 - clip_quantile, axis=0)
            filled = np.clip(filled, low, high)
        else:
            low, high = np.full(n, -np.inf), np.full(n, np.inf)
        stds = filled.std(axis=0)
        safe_stds = np.where(stds > 0, stds, 1.0)
        center = filled.mean(axis=0) if standardise else np.zeros(n)
        scale = safe_stds if standardise else np.ones(n)
        if not impute:
            means = np.full(n, np.nan)
        return cls(means, low, high, center, scale, safe_stds, log_mask)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.means.shape[0]:
            raise ModelError(
                f"feature matrix has shape {X.shape}, the preprocessor expects {self.means.shape[0]} columns"
            )
        out = np.where(np.isfinite(X), X, self.means)
        if self.log_mask is not None:
            out = np.where(self.log_mask, _signed_log1p(out), out)
        out = np.clip(out, self.clip_low, self.clip_high)
        return np.asarray((out - self.center) / self.scale)

    def zscores(self, X: np.ndarray) -> np.ndarray:
        """Standardised values with the training means/stds, whatever the scaling choice (for reasons)."""
        filled = np.where(np.isfinite(X), X, np.where(np.isfinite(self.means), self.means, 0.0))
        mean = np.where(np.isfinite(self.means), self.means, 0.0)
        return np.asarray((filled - mean) / self.stds)

    def to_json(self) -> str:
        def enc(a: np.ndarray) -> list[Any]:
            return [None if not np.isfinite(v) else float(v) for v in a] if a.size else []

        body = {k: enc(getattr(self, k)) for k in ("means", "center", "scale", "stds")}
        body["clip_low"] = [float(v) if np.isfinite(v) else "-inf" for v in self.clip_low]
        body["clip_high"] = [float(v) if np.isfinite(v) else "inf" for v in self.clip_high]
        if self.log_mask is not None:
            body["log_mask"] = [bool(v) for v in self.log_mask]
        return json.dumps(body)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        body = json.loads(text)

        def dec(values: list[Any]) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

        return cls(
            means=dec(body["means"]),
            clip_low=dec(body["clip_low"]),
            clip_high=dec(body["clip_high"]),
            center=dec(body["center"]),
            scale=dec(body["scale"]),
            stds=dec(body["stds"]),
            log_mask=np.array(body["log_mask"], dtype=bool) if "log_mask" in body else None,
        )


def _signed_log1p(X: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(np.sign(X) * np.log1p(np.abs(X)))
