"""The backtest's drift per day: PSI of each day's scores against the scoring model's reference (checked against
np.histogram and the PSI formula written out), the alert rate, the plot and the report's section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.drift_days import daily_drift, references_of
from backtest.plots import write_drift_plot
from backtest.report import _drift_lines
from streamer.drift import PSI_FLOOR, BinnedReference, DriftReference


def _scores(days: int = 6, per_day: int = 2000, shifted_from: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for d in range(days):
        s = rng.beta(1, 8, per_day) if d < shifted_from else rng.beta(3, 3, per_day)
        ts = pd.Timestamp("2024-05-01", tz="UTC") + pd.Timedelta(days=d) + pd.to_timedelta(
            rng.integers(0, 86_400, per_day), unit="s")
        frames.append(pd.DataFrame({"timestamp": ts, "score": s, "alerted": s > 0.6, "model_version": "v1"}))
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[::97, "score"] = np.nan  # transactions the stream gave no score
    return frame


class _Model:
    def __init__(self, version: str, manifest: dict[str, object]) -> None:
        self.version, self.manifest = version, manifest


def test_daily_psi_and_alert_rate_match_a_hand_computation(tmp_path: Path) -> None:
    ref = DriftReference({"mlp": BinnedReference.fit("mlp", np.random.default_rng(1).beta(1, 8, 50_000), 10)}, (), 1)
    refs = references_of([_Model("v1", {"drift_reference": ref.as_manifest()}), _Model("v0", {})], "mlp")
    assert list(refs) == ["v1"]  # a version without a reference is left out
    scores = _scores()
    drift = daily_drift(scores, refs, "mlp")
    assert len(drift) == 6
    expected = ref.scores["mlp"].expected
    for day, row in drift.iterrows():
        part = scores[(scores["timestamp"].dt.floor("D") == day) & scores["score"].notna()]
        counts = np.histogram(part["score"], np.concatenate([[-np.inf], ref.scores["mlp"].edges, [np.inf]]))[0]
        shares = np.maximum(np.append(counts, 0) / len(part), PSI_FLOOR)
        by_hand = sum((a - e) * math.log(a / e) for a, e in zip(shares, np.maximum(expected, PSI_FLOOR), strict=True))
        assert abs(row["psi_score"] - by_hand) < 1e-9
        assert row["events"] == len(part) and row["alert_rate"] == part["alerted"].mean()
    assert (drift["psi_score"].iloc[:4] < 0.05).all() and (drift["psi_score"].iloc[4:] > 0.2).all()
    assert [p.name for p in write_drift_plot(drift, tmp_path, 0.2)] == ["drift_per_day.png"]
    assert (tmp_path / "drift_per_day.png").stat().st_size > 10_000


def test_without_a_reference_the_report_says_so() -> None:
    drift = daily_drift(_scores(), {}, "mlp")
    assert drift["psi_score"].isna().all() and drift["alert_rate"].notna().all()
    lines = _drift_lines({"drift": {"days": 6, "days_with_reference": 0, "days_over_threshold": 0}})
    assert "carry no drift reference" in " ".join(lines)
    lines = _drift_lines({"drift": {"days": 6, "days_with_reference": 6, "days_over_threshold": 2, "psi_max": 0.9,
                                    "psi_threshold": 0.2}})
    assert "2 of 6 days above the threshold 0.2 (max 0.900)" in " ".join(lines)


def test_the_module_examples_run() -> None:
    import doctest

    import backtest.drift_days

    result = doctest.testmod(backtest.drift_days)
    assert result.attempted >= 4 and result.failed == 0
