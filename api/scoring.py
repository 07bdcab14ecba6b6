"""Score one transaction the way the stream would score it next: same decoder, same folds, same model, same rounding.

The request body goes through the stream's decoder (`streamer.validation.decode_transaction`: the strict contract,
duplicate keys, the future-skew check against the injected clock); the features come from the store's read-only
`peek` (the compiled user and merchant folds over the state bytes Redis holds now, extract before update, nothing
written); the model is the streamer's ModelHolder (the registry's `current`, NumPy forward pass, hot-reloaded);
scores and reasons are finished by the stream's own functions (`finished_scores`, `explanations_of`: reasons from
the scorer's attributions, for alerted rows only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from fraudstream.clock import Clock
from fraudstream.contracts import Reason, Transaction
from fraudstream.errors import ModelError
from fraudstream.settings import Settings
from state.engine import PeekedFeatures
from streamer.core import ModelProvider, explanations_of, finished_scores
from streamer.validation import DecodeFailure, decode_transaction


class PeekingStore(Protocol):
    def peek(self, txns: Sequence[Transaction]) -> PeekedFeatures: ...


@dataclass(frozen=True)
class Scored:
    transaction: Transaction
    score: float
    threshold: float
    alerted: bool
    reasons: list[Reason]
    features: dict[str, float]
    model_version: str
    scorer: str
    scored_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction.transaction_id,
            "user_id": self.transaction.user_id,
            "score": self.score,
            "threshold": self.threshold,
            "decision": "alert" if self.alerted else "pass",
            "reasons": [r.model_dump() for r in self.reasons],
            "model_version": self.model_version,
            "scorer": self.scorer,
            "features": self.features,
            "scored_at": self.scored_at.isoformat(),
        }


@dataclass(frozen=True)
class Late:
    """The stream would not score this event: it is older than the user's latest event minus the grace period."""

    transaction: Transaction
    grace_period_s: float

    @property
    def message(self) -> str:
        return (
            f"transaction {self.transaction.transaction_id} is older than the user's latest event minus the grace "
            f"period ({self.grace_period_s:.0f} s): the stream routes it to the late topic and never scores it"
        )


class ScoringService:
    """Decode, peek, score: one transaction at a time, the stream's code throughout."""

    def __init__(
        self,
        settings: Settings,
        store: PeekingStore,
        models: ModelProvider,
        clock: Clock,
        ping: Callable[[], object] | None = None,
    ) -> None:
        self.cfg = settings.streamer
        self.grace_period_s = settings.features.grace_period_s
        self.store = store
        self.models = models
        self.clock = clock
        self._ping = ping
        self._policies: tuple[object, Any] | None = None  # (model, its serving policy): resolved once per model

    def _policy(self, model: Any) -> Any:
        """The model's serving policy under the settings (models/policy.py), resolved once per loaded model."""
        cached = self._policies
        if cached is None or cached[0] is not model:
            cached = self._policies = (model, model.serving_policy(self.cfg.scorer, self.cfg.blend_mlp_weight))
        return cached[1]

    def decode(self, body: bytes) -> Transaction | DecodeFailure:
        """The body as the stream decodes a record value (future skew against the injected clock's now)."""
        return decode_transaction(body, self.clock.now(), self.cfg.max_future_skew_s)

    def score(self, body: bytes) -> Scored | Late | DecodeFailure:
        """One body, decoded and scored alone."""
        txn = self.decode(body)
        return txn if isinstance(txn, DecodeFailure) else self.score_many([txn])[0]

    def score_many(self, txns: Sequence[Transaction]) -> list[Scored | Late]:
        """Each transaction against the state as it is (never against another's update): one store read, one fold
        call and one model call for all of them, as the stream scores a batch."""
        now = self.clock.now()
        model = self.models.model  # one model for the whole call, as per batch in the stream
        policy = self._policy(model)
        scorer, threshold = policy.scorer, float(policy.threshold)
        peeked = self.store.peek(txns)
        rows = np.flatnonzero(~peeked.late)
        X = peeked.vectors[rows]
        raw = np.asarray(model.score(X, scorer, policy.blend_mlp_weight), dtype=np.float64)
        if raw.shape != (len(rows),):
            raise ModelError(f"model {model.version} returned {raw.shape} scores for {len(rows)} rows")
        scores = finished_scores(model, raw).tolist()
        reasons: list[list[Any]] = [[] for _ in range(len(rows))]
        alerted = [k for k, score in enumerate(scores) if score >= threshold]
        if alerted:  # reasons from the scorer's attributions, for the alerted rows only (as in the stream)
            why, _ = explanations_of(model, X[alerted], self.cfg.top_reasons, scorer, policy.blend_mlp_weight,
                                     self.cfg.mlp_attribution)  # the stream's method (StreamProcessor._explain)
            for k, r in zip(alerted, why, strict=True):
                reasons[k] = r
        out: list[Scored | Late] = [Late(t, self.grace_period_s) for t in txns]
        names = model.feature_names
        for k, (i, row) in enumerate(zip(rows.tolist(), X.tolist(), strict=True)):
            features = {n: v for n, v in zip(names, row, strict=False) if math.isfinite(v)}
            score = float(scores[k])
            out[i] = Scored(txns[i], score, threshold, score >= threshold, reasons[k], features, model.version,
                            scorer, now)  # fmt: skip
        return out

    def ready(self) -> dict[str, str]:
        """What a readiness probe needs: the model in use, and the state store answering (raises if it does not)."""
        if self._ping is not None:
            self._ping()
        model = self.models.model
        return {"model_version": model.version,
                "scorer": self._policy(model).scorer}
