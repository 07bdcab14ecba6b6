"""Feature configuration: label delay, grace period for late events, night hours."""

from __future__ import annotations

from dataclasses import dataclass

from fraudstream.errors import ConfigError
from fraudstream.settings import FeatureSettings

DAY_S = 86_400


@dataclass(frozen=True)
class FeatureConfig:
    """Everything the feature functions need besides the state and the event."""

    label_delay_s: float = 7 * DAY_S
    grace_period_s: float = 3600.0
    night_end_hour: int = 6

    def __post_init__(self) -> None:
        if not self.label_delay_s >= 0 or not self.grace_period_s >= 0:
            raise ConfigError("label_delay_s and grace_period_s must be non-negative numbers of seconds")
        if not 0 <= self.night_end_hour <= 23:
            raise ConfigError(f"night_end_hour must be 0..23, got {self.night_end_hour}")

    @classmethod
    def from_settings(cls, s: FeatureSettings) -> FeatureConfig:
        return cls(
            label_delay_s=float(s.label_delay_days) * DAY_S,
            grace_period_s=float(s.grace_period_s),
            night_end_hour=int(s.night_end_hour),
        )

    @property
    def delay_s(self) -> int:
        """The label delay in whole seconds (event times are whole seconds)."""
        return round(self.label_delay_s)

    @property
    def grace_s(self) -> int:
        return round(self.grace_period_s)
