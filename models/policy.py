"""The scoring policy: which scorer, which blend weight, which threshold and which alert budget a model version is
served with. Training writes it into the registry manifest (signed with the rest); training's own evaluation,
the backtest, the streamer and the scoring API read it from there.

Settings may name a scorer or a blend weight explicitly (FRAUD_STREAMER__SCORER, FRAUD_STREAMER__BLEND_MLP_WEIGHT):
- another scorer is served with that scorer's own threshold, calibrated by training under the same alert budget;
- a blend weight other than the policy's is refused with one line: the blend threshold was calibrated for the
  policy's weight only, and a worker has no labelled window to recalibrate it on (train with that weight instead).

A manifest written before policies existed gets the documented legacy policy: scorer mlp (stack when the version
has no MLP), the manifest's `blend_mlp_weight` (0.5 when absent: what training calibrated the blend threshold for),
that scorer's threshold, alert budget unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fraudstream.errors import ConfigError, ModelError

SCORERS = ("mlp", "stack", "blend")


@dataclass(frozen=True)
class ScoringPolicy:
    scorer: str
    blend_mlp_weight: float
    threshold: float
    alerts_per_day: float | None = None
    threshold_policy: str = "alert_budget"
    source: str = "manifest"  # manifest | legacy default | settings

    def as_manifest(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "blend_mlp_weight": float(self.blend_mlp_weight),
            "threshold": float(self.threshold),
            "alerts_per_day": self.alerts_per_day,
            "threshold_policy": self.threshold_policy,
        }


def policy_of_manifest(manifest: dict[str, Any]) -> ScoringPolicy:
    """The manifest's policy, or the legacy default for manifests written before policies existed."""
    thresholds = {k: float(v) for k, v in (manifest.get("thresholds") or {}).items()}
    stored = manifest.get("policy")
    if isinstance(stored, dict):
        return ScoringPolicy(
            scorer=str(stored["scorer"]),
            blend_mlp_weight=float(stored["blend_mlp_weight"]),
            threshold=float(stored["threshold"]),
            alerts_per_day=None if stored.get("alerts_per_day") is None else float(stored["alerts_per_day"]),
            threshold_policy=str(stored.get("threshold_policy", "alert_budget")),
        )
    scorers = manifest.get("scorers") or list(thresholds)
    scorer = "mlp" if "mlp" in scorers else "stack"
    return ScoringPolicy(
        scorer=scorer,
        blend_mlp_weight=float(manifest.get("blend_mlp_weight", 0.5)),
        threshold=thresholds.get(scorer, 0.5),
        alerts_per_day=None,
        source="legacy default",
    )


def resolve_policy(
    version: str,
    policy: ScoringPolicy,
    thresholds: dict[str, float],
    scorer: str | None,
    blend_mlp_weight: float | None,
) -> ScoringPolicy:
    """The policy a model version is served with once explicit settings are applied (None: the manifest's)."""
    if scorer is None or scorer == policy.scorer:
        chosen = policy.scorer
    else:
        chosen = scorer
    weight = policy.blend_mlp_weight
    if blend_mlp_weight is not None and chosen == "blend" and abs(float(blend_mlp_weight) - weight) > 1e-12:
        raise ConfigError(
            f"FRAUD_STREAMER__BLEND_MLP_WEIGHT={blend_mlp_weight:g} differs from model {version}'s policy weight "
            f"{weight:g}, the only weight its blend threshold was calibrated for; unset it, or train with "
            f"blend_mlp_weight: {blend_mlp_weight:g} in the training config"
        )
    if chosen == policy.scorer:
        return policy
    if chosen not in thresholds:
        raise ModelError(f"model {version} has no threshold for scorer '{chosen}'; pick another scorer")
    return ScoringPolicy(chosen, weight, float(thresholds[chosen]), policy.alerts_per_day, policy.threshold_policy,
                         source="settings")
