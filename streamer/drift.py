"""Drift, watched: per hour of event time, PSI of the scores and of the top features against the training reference,
the alert rate and the precision of the analysts' verdicts. Pure NumPy (no Kafka, Redis or clock): the stream core
feeds it whole batches and turns the closed hours into `drift` records and Prometheus gauges.

The training reference (stored in the signed registry manifest under `drift_reference`, models/registry.py) holds,
per scorer and per top feature, the inner bin edges (quantiles of the training values) and the share of training
rows in each bin; one extra bin at the end holds non-finite values (a feature with no history yet). A batch is
binned with one `np.searchsorted` per column and counted into its hours with one `np.bincount`.

PSI = sum over bins of (a - e) * ln(a / e), a the hour's share and e the reference's, both floored at PSI_FLOOR so
that an empty bin does not make it infinite. The usual reading: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shifted.

>>> ref = BinnedReference.fit("amount", np.arange(100.0), bins=4)
>>> ref.edges.tolist()
[25.0, 50.0, 75.0]
>>> ref.expected.tolist()
[0.25, 0.25, 0.25, 0.25, 0.0]
>>> round(psi(ref.expected, ref.counts(np.arange(100.0))), 6)
0.0
>>> round(psi(ref.expected, ref.counts(np.full(10, 99.0))), 3)
6.905
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = [
    "HOUR_S",
    "PSI_FLOOR",
    "BinnedReference",
    "DriftReference",
    "HourlyDrift",
    "build_reference",
    "psi",
    "psi_rows",
]

HOUR_S = 3600
#: Smallest share a bin counts with in PSI (an empty bin would give ln(0)).
PSI_FLOOR = 1e-4


def psi(expected: Sequence[float] | np.ndarray, counts: Sequence[float] | np.ndarray) -> float:
    """Population stability index of observed bin counts against the expected shares (nan when nothing observed).

    >>> psi([0.5, 0.5], [50, 50])
    0.0
    >>> round(psi([0.5, 0.5], [90, 10]), 4)
    0.8789
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return math.nan
    return float(psi_rows(np.asarray(expected, dtype=np.float64), c[None, :])[0])


def psi_rows(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """PSI of every row of a (rows, bins) count matrix against one expected share vector (nan for an empty row)."""
    c = np.asarray(counts, dtype=np.float64)
    totals = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual = np.maximum(c / totals, PSI_FLOOR)
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    out = np.sum((actual - e) * np.log(actual / e), axis=1)
    out[totals[:, 0] <= 0] = np.nan
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class BinnedReference:
    """One column's reference: inner bin edges and the expected share of each of len(edges) + 2 bins (the last:
    non-finite values)."""

    name: str
    edges: np.ndarray
    expected: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of every value (one searchsorted; non-finite values in the last bin)."""
        v = np.asarray(values, dtype=np.float64)
        out = np.searchsorted(self.edges, v, side="right")
        out[~np.isfinite(v)] = len(self.edges) + 1
        return out

    def counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.bins(values), minlength=self.n_bins)

    @classmethod
    def fit(cls, name: str, values: np.ndarray, bins: int = 10) -> BinnedReference:
        """Edges at the quantiles of the finite values (ties merged, so a count feature gets fewer bins)."""
        v = np.asarray(values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        if finite.size:  # edges are training values ("higher"): a 0/1 flag gets the one edge 1, not 0.3
            edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="higher"))
            edges = edges[edges > finite.min()]  # no bin below the smallest training value
        else:
            edges = np.zeros(0)
        counts = cls(name, edges, np.zeros(len(edges) + 2)).counts(v)
        return cls(name, edges, counts / max(int(counts.sum()), 1))

    def as_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "edges": self.edges.tolist(), "proportions": self.expected.tolist()}

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> BinnedReference:
        edges = np.asarray(data["edges"], dtype=np.float64)
        expected = np.asarray(data["proportions"], dtype=np.float64)
        if expected.shape != (len(edges) + 2,) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"drift reference of {data.get('name')!r}: edges and proportions do not fit")
        return cls(str(data["name"]), edges, expected)


@dataclass(frozen=True)
class DriftReference:
    """What training stores for drift: the score reference per scorer and the top features' references."""

    scores: dict[str, BinnedReference]
    features: tuple[BinnedReference, ...]
    rows: int

    def as_manifest(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "scores": {name: ref.as_manifest() for name, ref in self.scores.items()},
            "features": [ref.as_manifest() for ref in self.features],
        }

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> DriftReference:
        scores = {str(k): BinnedReference.from_manifest(v) for k, v in dict(data["scores"]).items()}
        features = tuple(BinnedReference.from_manifest(f) for f in data["features"])
        return cls(scores, features, int(data["rows"]))


def build_reference(
    scores: Mapping[str, np.ndarray],
    X: np.ndarray,
    names: Sequence[str],
    importances: np.ndarray,
    top_features: int,
    bins: int = 10,
) -> DriftReference:
    """The reference of training rows: each scorer's scores and the `top_features` columns of X (named `names`) with
    the largest importances (ties: the earlier column).

    >>> X = np.column_stack([np.arange(10.0), np.zeros(10), np.arange(10.0) ** 2])
    >>> ref = build_reference({"mlp": np.linspace(0, 1, 10)}, X, ["a", "b", "c"], np.array([0.2, 0.1, 0.7]), 2, 4)
    >>> [f.name for f in ref.features]
    ['c', 'a']
    """
    order = np.argsort(-np.asarray(importances, dtype=np.float64), kind="stable")[:top_features]
    return DriftReference(
        {name: BinnedReference.fit(name, s, bins) for name, s in scores.items()},
        tuple(BinnedReference.fit(names[i], X[:, i], bins) for i in order.tolist()),
        int(X.shape[0]),
    )


@dataclass
class _Hour:
    score: np.ndarray
    features: np.ndarray  # (n_features, bins of the widest)
    events: int = 0
    alerts: int = 0
    verdicts: int = 0
    frauds: int = 0


@dataclass
class HourlyDrift:
    """Per-hour histograms, alert and verdict counts of one worker, fed per batch, closed by event time.

    An hour [h, h + 1 h) closes once the watermark passes its end plus `close_after_s` (the grace period: later
    events of a user are routed to the late topic, never scored). The watermark is the smallest, over the partitions
    seen, of each partition's latest event time (partitions may run apart in event time: the kafka engine's
    alignment allows up to the label delay); an event of an hour already closed is not counted, only reported in
    the next record (`after_close`). `feature_columns` gives the column of the batch's vectors that holds each
    reference feature.

    >>> ref = DriftReference({"mlp": BinnedReference.fit("mlp", np.linspace(0, 1, 100), 4)}, (), 100)
    >>> watch = HourlyDrift(ref, "mlp", (), threshold=0.2, close_after_s=0)
    >>> watch.observe(np.array([10, 20]), np.array([0.1, 0.9]), np.array([False, True]), np.zeros((2, 0)))
    >>> watch.close()
    []
    >>> watch.observe(np.array([3601]), np.array([0.5]), np.array([False]), np.zeros((1, 0)))
    >>> [(r["hour"], r["events"], r["alert_rate"]) for r in watch.close()]
    [('1970-01-01T00:00:00+00:00', 2, 0.5)]
    """

    reference: DriftReference
    scorer: str
    feature_columns: Sequence[int]
    threshold: float
    close_after_s: float
    min_events: int = 1
    hours: dict[int, _Hour] = field(default_factory=dict)
    watermark_s: float = -math.inf
    latest_s: dict[int, float] = field(default_factory=dict)  # partition -> its latest event time
    open_from: int | None = None  # the start of the oldest hour not closed yet (None: none closed)
    after_close: int = 0

    def __post_init__(self) -> None:
        self._score_ref = self.reference.scores[self.scorer]
        self._width = max([f.n_bins for f in self.reference.features], default=1)
        self._columns = np.asarray(self.feature_columns, dtype=np.intp)

    def _hour(self, start: int) -> _Hour:
        hour = self.hours.get(start)
        if hour is None:
            hour = _Hour(np.zeros(self._score_ref.n_bins, np.int64),
                         np.zeros((len(self.reference.features), self._width), np.int64))  # fmt: skip
            self.hours[start] = hour
        return hour

    def observe(
        self,
        ts_s: np.ndarray,
        scores: np.ndarray,
        alerted: np.ndarray,
        vectors: np.ndarray,
        rows: np.ndarray | None = None,
        partitions: np.ndarray | None = None,
    ) -> None:
        """One batch of scored events: event times (epoch s), scores, alert flags, and their feature vectors
        (`vectors[rows]` when rows is given: the scored rows of the batch's matrix, without copying all of it), and
        the partition of each (None: one partition)."""
        if len(ts_s) == 0:
            return
        ts_s = np.asarray(ts_s, dtype=np.int64)
        self._advance(ts_s, partitions)
        if self.open_from is not None and int(ts_s.min()) < self.open_from:
            keep = ts_s >= self.open_from
            self.after_close += int(np.count_nonzero(~keep))
            picked = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.intp)
            ts_s, scores, alerted, rows = ts_s[keep], np.asarray(scores)[keep], np.asarray(alerted)[keep], picked[keep]
        n = len(ts_s)
        if n == 0:
            return
        starts, hour_of = np.unique(np.asarray(ts_s, dtype=np.int64) // HOUR_S * HOUR_S, return_inverse=True)
        k = len(starts)
        score_bins = self._score_ref.bins(scores)
        score_counts = np.bincount(hour_of * self._score_ref.n_bins + score_bins,
                                   minlength=k * self._score_ref.n_bins).reshape(k, -1)  # fmt: skip
        events = np.bincount(hour_of, minlength=k)
        alerts = np.bincount(hour_of, weights=np.asarray(alerted, dtype=np.float64), minlength=k)
        nf, w = len(self.reference.features), self._width
        if nf:
            picked = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.intp)
            cols = np.asarray(vectors, dtype=np.float64)[picked[:, None], self._columns[None, :]]
            fbins = np.column_stack([ref.bins(cols[:, i]) for i, ref in enumerate(self.reference.features)])
            flat = (hour_of[:, None] * nf + np.arange(nf)[None, :]) * w + fbins
            feature_counts = np.bincount(flat.ravel(), minlength=k * nf * w).reshape(k, nf, w)
        for i, start in enumerate(starts.tolist()):  # the batch's few hours, not its events
            hour = self._hour(start)
            hour.score += score_counts[i]
            if nf:
                hour.features += feature_counts[i]
            hour.events += int(events[i])
            hour.alerts += int(alerts[i])

    def _advance(self, ts_s: np.ndarray, partitions: np.ndarray | None) -> None:
        if partitions is None:
            self.latest_s[0] = max(self.latest_s.get(0, -math.inf), float(ts_s.max()))
        else:
            parts, at = np.unique(np.asarray(partitions, dtype=np.int64), return_inverse=True)
            latest = np.full(len(parts), np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(latest, at, ts_s)
            for p, t in zip(parts.tolist(), latest.tolist(), strict=True):  # the batch's partitions, not its events
                self.latest_s[p] = max(self.latest_s.get(p, -math.inf), float(t))
        self.watermark_s = min(self.latest_s.values())

    def observe_verdicts(self, is_fraud: np.ndarray, labelled_at_s: np.ndarray) -> None:
        """Analysts' verdicts as they arrive: counted in the hour the stream is in (its watermark; the oldest open
        hour if that one is closed), or in the verdict's own hour before any event was seen."""
        if len(is_fraud) == 0:
            return
        at = self.watermark_s if math.isfinite(self.watermark_s) else float(np.max(labelled_at_s))
        hour = self._hour(max(int(at) // HOUR_S * HOUR_S, self.open_from or -HOUR_S))
        hour.verdicts += len(is_fraud)
        hour.frauds += int(np.count_nonzero(is_fraud))

    def close(self, every: bool = False) -> list[dict[str, Any]]:
        """The records of every hour that can no longer change (every: of all hours), oldest first; forgets them."""
        done = sorted(h for h in self.hours if every or h + HOUR_S + self.close_after_s <= self.watermark_s)
        if done:
            self.open_from = max(done[-1] + HOUR_S, self.open_from or done[-1] + HOUR_S)
        return [self._record(h, self.hours.pop(h)) for h in done]

    def _record(self, start: int, hour: _Hour) -> dict[str, Any]:
        features = self.reference.features
        feature_psi = {ref.name: _finite(psi(ref.expected, hour.features[i, : ref.n_bins]))
                       for i, ref in enumerate(features)}  # fmt: skip
        score_psi = _finite(psi(self._score_ref.expected, hour.score))
        worst = max([v for v in [score_psi, *feature_psi.values()] if v is not None], default=None)
        crossed = [name for name, v in [("score", score_psi), *feature_psi.items()]
                   if v is not None and v > self.threshold]  # fmt: skip
        return {
            "hour": datetime.fromtimestamp(start, UTC).isoformat(),
            "hour_start_unix": start,
            "scorer": self.scorer,
            "events": hour.events,
            "alerts": hour.alerts,
            "alert_rate": hour.alerts / hour.events if hour.events else None,
            "verdicts": hour.verdicts,
            "verdicts_fraud": hour.frauds,
            "precision": hour.frauds / hour.verdicts if hour.verdicts else None,
            "psi_score": score_psi,
            "psi_features": feature_psi,
            "psi_max": worst,
            "psi_threshold": self.threshold,
            "crossed": crossed,
            "retrain": bool(crossed) and hour.events >= self.min_events,
            "after_close": self._take_after_close(),
        }

    def _take_after_close(self) -> int:
        count, self.after_close = self.after_close, 0
        return count


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None
