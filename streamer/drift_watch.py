"""The stream core's drift watch: streamer/drift.py's hourly histograms for the model in use, its closed hours as
`drift` topic records, Prometheus gauges and one warning line per hour whose PSI crosses the threshold.

Fed once per batch (never per event). The reference comes from the model's signed manifest (`drift_reference`);
a version published without one is not watched (one log line per such version). Hours still open when the model
changes are closed at once, their records marked `partial: true` (never `retrain`). State is in memory: after a
restart the hour in progress starts again from the events processed since (README "Drift").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudstream.settings import Settings
from streamer.drift import HOUR_S, DriftReference, HourlyDrift
from streamer.outputs import OutputMessage, contract_headers

if TYPE_CHECKING:
    from state.store import LabelRecord
    from streamer.metrics import StreamMetrics

__all__ = ["DriftWatch", "retrain_command"]

log = logging.getLogger(__name__)

VERDICT_SOURCE = "analyst"  # precision counts the analysts' verdicts on alerts, not chargebacks or datasets
_HEADERS = contract_headers("drift")


def retrain_command(hour_end: datetime, days: int) -> str:
    """The retraining run a crossed threshold asks for: the topics' last `days` days of event time to the hour."""
    start = hour_end - timedelta(days=days)
    return f"fraudstream train --from-topics --start {start:%Y-%m-%dT%H:%M:%SZ} --end {hour_end:%Y-%m-%dT%H:%M:%SZ}"


class DriftWatch:
    """One worker's drift watch over the model versions it serves."""

    def __init__(self, settings: Settings, metrics: StreamMetrics | None = None) -> None:
        self.cfg = settings.drift
        self.topic = settings.topics.drift
        self.close_after_s = settings.features.grace_period_s
        self.metrics = metrics
        self._key: tuple[str, str] | None = None  # (model version, scorer) being watched
        self._hours: HourlyDrift | None = None
        self._pending: list[dict[str, Any]] = []

    def _watch(self, model: Any, scorer: str) -> HourlyDrift | None:
        key = (str(model.version), scorer)
        if key == self._key:
            return self._hours
        if self._hours is not None:
            self._pending.extend({**r, "partial": True, "retrain": False} for r in self._flush())
        self._key, self._hours = key, None
        data = (getattr(model, "manifest", None) or {}).get("drift_reference") if self.cfg.enabled else None
        if data is None:
            if self.cfg.enabled:
                log.info("model version %s has no drift reference (trained before drift was watched): drift is not "
                         "watched until a model trained with this code is served", model.version)  # fmt: skip
            self._set_enabled(False)
            return None
        reference = DriftReference.from_manifest(data)
        if scorer not in reference.scores:
            log.info("model version %s has no drift reference for scorer %s: drift is not watched", model.version,
                     scorer)  # fmt: skip
            self._set_enabled(False)
            return None
        names = list(model.feature_names)
        features = tuple(f for f in reference.features if f.name in names)
        reference = DriftReference(reference.scores, features, reference.rows)
        self._hours = HourlyDrift(reference, scorer, [names.index(f.name) for f in features],
                                  self.cfg.psi_threshold, self.close_after_s, self.cfg.min_hour_events)  # fmt: skip
        self._set_enabled(True)
        return self._hours

    def _set_enabled(self, on: bool) -> None:
        if self.metrics is not None:
            self.metrics.drift_watched.set(1 if on else 0)

    def observe(
        self,
        model: Any,
        scorer: str,
        ts_s: np.ndarray,
        scores: np.ndarray,
        alerted: np.ndarray,
        vectors: np.ndarray,
        rows: np.ndarray,
        partitions: np.ndarray | None = None,
    ) -> None:
        """The batch's scored events: event times (epoch s), scores, alert flags, partitions; `vectors[rows]` their
        features."""
        hours = self._watch(model, scorer)
        if hours is not None and len(ts_s):
            hours.observe(ts_s, scores, alerted, vectors, rows, partitions)

    def verdicts(self, labels: Sequence[LabelRecord]) -> None:
        """The batch's labels: the analysts' verdicts count toward precision."""
        if self._hours is None or not labels:
            return
        picked = [r.label for r in labels if r.label.source == VERDICT_SOURCE]
        if picked:
            self._hours.observe_verdicts(np.array([lb.is_fraud for lb in picked], dtype=bool),
                                         np.array([lb.labelled_at.timestamp() for lb in picked]))  # fmt: skip

    def _flush(self) -> list[dict[str, Any]]:
        return [] if self._hours is None else self._hours.close(every=True)

    def close(self) -> list[OutputMessage]:
        """The records of the hours closed by now, as drift topic messages (warning once per crossed hour)."""
        records, self._pending = self._pending, []
        if self._hours is not None:
            records += self._hours.close()
        if not records:
            return []
        version = self._key[0] if self._key else None
        messages = []
        for record in records:
            hour_end = datetime.fromtimestamp(record["hour_start_unix"] + HOUR_S, UTC)
            record = {**record, "model_version": version, "partial": record.get("partial", False)}
            if record["retrain"]:
                record["retrain_command"] = retrain_command(hour_end, self.cfg.retrain_days)
                log.warning("drift: hour %s, PSI above %.2f for %s (score %s, max %s over %d events): retrain with "
                            "`%s`", record["hour"], self.cfg.psi_threshold, ", ".join(record["crossed"]),
                            record["psi_score"], record["psi_max"], record["events"],
                            record["retrain_command"])  # fmt: skip
            if self.metrics is not None:
                self.metrics.observe_drift(record)
            value = json.dumps(record, sort_keys=True).encode()
            messages.append(OutputMessage(self.topic, record["hour"].encode(), value, _HEADERS))
        return messages
