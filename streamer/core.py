"""The framework-free stream core: raw records in; DLQ, late, score and alert messages out, state in the store.

Both engines (confluent-kafka, faust) call StreamProcessor.process on a batch and then produce the messages and
commit the offsets in `BatchResult.next_offsets`. Bad records never raise; a Redis failure (StateStoreError) does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from fraudstream.clock import Clock
from fraudstream.contracts import Alert, Explanation, Label, Reason, Transaction
from fraudstream.errors import ModelError
from fraudstream.settings import Settings
from state.store import FeatureStore, LabelRecord, SourceRows
from streamer.drift_watch import DriftWatch
from streamer.explain_threads import ExplainThreads
from streamer.outputs import (
    OutputMessage,
    contract_headers,
    decode_messages,
    encode_messages,
    encode_one,
    score_values,
)
from streamer.reasons import explain
from streamer.validation import DecodeFailure, dead_letter, decode_records, decode_transactions
from streamer.wire import TxnRows

if TYPE_CHECKING:
    from streamer.metrics import StreamMetrics

__all__ = ["BatchCounts", "BatchResult", "BatchTimings", "OutputMessage", "RawRecord", "StreamProcessor"]

log = logging.getLogger(__name__)

LATE_REASON_HEADER = "late-reason"
SCORE_DECIMALS = 9
_ALERT_HEADERS = contract_headers("alert")
_SCORE_HEADERS = contract_headers("score")


class RawRecord(NamedTuple):
    """One consumed Kafka record, engine-neutral (a tuple: cheap to build once per consumed record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int | None = None


@dataclass
class BatchCounts:
    events: int = 0  # transaction records that validated (scored, late or replayed)
    scored: int = 0
    alerts: int = 0
    dlq: int = 0  # dead letters: records that failed validation, and duplicates
    duplicates: int = 0  # transactions whose id was already applied (dead-lettered with reason `duplicate`)
    late: int = 0
    labels: int = 0
    replayed: int = 0
    replayed_uncached: int = 0  # replayed but no cached output left (already committed downstream)


@dataclass
class BatchTimings:
    redis_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0
    score_calls: int = 0


@dataclass
class BatchResult:
    messages: list[OutputMessage]
    counts: BatchCounts
    timings: BatchTimings
    next_offsets: dict[tuple[str, int], int]
    #: Event times (epoch seconds) of the transactions scored in this batch: for end-to-end latency metrics.
    event_times_s: list[float] = field(default_factory=list)
    #: Kafka record timestamps (ms) of the transaction records in this batch: for broker-to-output latency.
    record_times_ms: list[int] = field(default_factory=list)
    model_version: str | None = None


class ScoringModel(Protocol):
    """What the core needs of a loaded model (models.loaded.LoadedModel satisfies it)."""

    version: str
    feature_names: tuple[str, ...]
    thresholds: dict[str, float]

    def score(self, X: np.ndarray, scorer: Any, blend_mlp_weight: float = 0.5) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...

    def serving_policy(self, scorer: str | None = None, blend_mlp_weight: float | None = None) -> Any: ...

    def attributions(
        self, X: np.ndarray, scorer: Any = "mlp", blend_mlp_weight: float = 0.5, mlp_method: str = "deeplift"
    ) -> Any: ...


class ModelProvider(Protocol):
    """Gives the model to use for the next batch (streamer.scoring.ModelHolder satisfies it)."""

    @property
    def model(self) -> ScoringModel: ...


def finished_scores(model: ScoringModel, scores: np.ndarray) -> np.ndarray:
    """A model's raw scores as the stream emits them (the scoring API too): finite or ModelError, clipped to [0, 1],
    rounded to SCORE_DECIMALS so that they do not depend on how BLAS sums a batch of a given size (last-ulp
    differences)."""
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ModelError(f"model {model.version} produced {int(bad.sum())} non-finite scores; check the model")
    return np.asarray(np.round(np.clip(scores, 0.0, 1.0), SCORE_DECIMALS), dtype=np.float64)


def reasons_of(model: ScoringModel, X: np.ndarray, top: int) -> list[list[Reason]]:
    """Reasons from the model's importance-weighted z-scores (not the scorer's attributions): kept for callers that
    have no scorer; alerts use explanations_of."""
    contributions = np.round(np.asarray(model.contributions(X), dtype=np.float64), SCORE_DECIMALS)
    return explain(model.feature_names, X, contributions, top)


def explanations_of(
    model: ScoringModel,
    X: np.ndarray,
    top: int,
    scorer: str,
    blend_mlp_weight: float,
    mlp_method: str = "deeplift",
    threads: ExplainThreads | None = None,
) -> tuple[list[list[Reason]], list[Explanation]]:
    """The alerted rows' attributions (one vectorised call over the rows passed in: only the alerted ones, split
    over `threads` when given) and the reasons derived from them, one per feature family (streamer/reasons.py)."""
    if len(X) == 0:
        return [], []
    if threads is None:
        att = model.attributions(X, scorer, blend_mlp_weight, mlp_method)
    else:
        att = threads.attributions(model, X, scorer, blend_mlp_weight, mlp_method)
    values = np.asarray(att.values, dtype=np.float64)
    reasons = explain(model.feature_names, X, np.round(values, SCORE_DECIMALS), top)
    used = np.flatnonzero(np.any(values != 0.0, axis=0))
    names = [model.feature_names[c] for c in used.tolist()]
    explanations = [
        Explanation(base_value=float(base), space="probability", method=att.method,
                    attributions=dict(zip(names, row.tolist(), strict=True)))
        for base, row in zip(np.asarray(att.base).tolist(), values[:, used], strict=True)
    ]  # fmt: skip
    return reasons, explanations


class StreamProcessor:
    """Validates, updates state, scores in micro-batches and builds the output messages of one batch."""

    def __init__(
        self,
        settings: Settings,
        store: FeatureStore,
        models: ModelProvider,
        clock: Clock,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.cfg = settings.streamer
        self._policies: dict[str, Any] = {}  # model version -> its serving policy (models/policy.py)
        self.store = store
        self.models = models
        self.clock = clock
        self.metrics = metrics
        self.drift = DriftWatch(settings, metrics)  # per-hour PSI, alert rate, precision (streamer/drift_watch.py)
        self.explain_threads = ExplainThreads(self.cfg.explain_threads)

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        start = self.clock.monotonic()
        now = self.clock.now()
        model = self.models.model  # one model for the whole batch: swaps happen between batches
        counts, timings = BatchCounts(), BatchTimings()
        outputs: list[Sequence[OutputMessage]] = [()] * len(records)
        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset >= next_offsets.get(tp, 0):
                next_offsets[tp] = record.offset + 1
        failures, rows, labels = self._decode(records, now)
        for i, failure in failures.items():
            outputs[i] = (dead_letter(records[i], failure, now, self.topics.dlq),)
        counts.dlq = len(failures)
        if labels:
            t0 = self.clock.monotonic()
            self.store.apply_labels(labels)
            timings.redis_s += self.clock.monotonic() - t0
            counts.labels = len(labels)
        result = BatchResult([], counts, timings, next_offsets, model_version=model.version)
        if len(rows):
            self._transactions(records, rows, outputs, model, now, result)
        self.drift.verdicts(labels)
        result.messages = [message for messages in outputs for message in messages]
        result.messages += self.drift.close()
        timings.total_s = self.clock.monotonic() - start
        if self.metrics is not None:
            self.metrics.observe_batch(result)
        return result

    def _decode(
        self, records: Sequence[RawRecord], now: Any
    ) -> tuple[dict[int, DecodeFailure], TxnRows, list[LabelRecord]]:
        """Every record decoded and checked (headers, strict contract per batch, duplicate keys, key == user_id):
        failures by position, the transactions as columns, the labels."""
        topics = self.topics
        txns = [i for i, r in enumerate(records) if r.topic == topics.transactions]
        if len(txns) == len(records):  # the usual batch: transactions only
            failures, rows = decode_transactions(records, now, self.cfg.max_future_skew_s)
            return failures, rows, []
        failures = {
            i: DecodeFailure("UnexpectedTopic", f"topic {r.topic} is neither transactions nor labels")
            for i, r in enumerate(records) if r.topic not in (topics.transactions, topics.labels)
        }  # fmt: skip
        found, rows = decode_transactions([records[i] for i in txns], now, self.cfg.max_future_skew_s)
        failures.update((txns[j], failure) for j, failure in found.items())
        rows = replace(rows, index=[txns[j] for j in rows.index])
        labels: list[LabelRecord] = []
        at = [i for i, r in enumerate(records) if r.topic == topics.labels]
        for i, label in zip(at, decode_records(Label, [records[i] for i in at], None, False), strict=True):
            if isinstance(label, DecodeFailure):
                failures[i] = label
            else:
                labels.append(LabelRecord(records[i].partition, records[i].offset, label))
        return failures, rows, labels

    def _transactions(
        self,
        records: Sequence[RawRecord],
        rows: TxnRows,
        outputs: list[Sequence[OutputMessage]],
        model: ScoringModel,
        now: Any,
        result: BatchResult,
    ) -> None:
        counts, timings = result.counts, result.timings
        index = rows.index
        n = len(index)
        source = SourceRows(
            np.fromiter((records[i].partition for i in index), np.int64, n),
            np.fromiter((records[i].offset for i in index), np.int64, n),
            rows.user_id,
            rows.merchant_id,
            rows.columns,
            rows.transaction_id,
        )
        t0 = self.clock.monotonic()
        batch = self.store.prepare_rows(source)
        timings.redis_s += self.clock.monotonic() - t0
        late, replayed = np.asarray(batch.late, dtype=bool), np.asarray(batch.replayed, dtype=bool)
        duplicate = np.fromiter((d is not None for d in batch.duplicate_of), bool, len(batch.duplicate_of))
        if len(duplicate) != n:
            duplicate = np.zeros(n, dtype=bool)
        scored = np.flatnonzero(~late & ~replayed & ~duplicate)
        vectors = np.asarray(batch.vectors, dtype=np.float64)
        policy = self._policy(model)
        scores = self._score(model, vectors, scored, timings, policy)
        scorer, threshold = policy.scorer, float(policy.threshold)
        alerted = scores >= threshold
        self.drift.observe(model, scorer, rows.columns.ts[scored], scores, alerted, vectors, scored,
                           source.partition[scored])  # fmt: skip
        cached: list[bytes | None] = [None] * n
        scored_at = scored.tolist()
        values = score_values(
            [rows.transaction_id[j] for j in scored_at], [rows.user_id[j] for j in scored_at],
            [rows.timestamp[j] for j in scored_at], scores.tolist(), threshold, alerted.tolist(), model.version,
            scorer, now,
        )  # fmt: skip
        scores_topic = self.topics.scores
        for j, value, alert in zip(scored_at, values, alerted.tolist(), strict=True):
            if not alert:
                key = rows.user_id[j].encode()
                outputs[index[j]] = (OutputMessage(scores_topic, key, value, _SCORE_HEADERS),)
                cached[j] = encode_one(scores_topic, key, value, _SCORE_HEADERS)
        raised = scored[alerted]
        positions = np.flatnonzero(alerted).tolist()
        reasons, explanations = self._explain(model, vectors[raised], policy)
        for j, k, why, how in zip(raised.tolist(), positions, reasons, explanations, strict=True):
            messages = self._alert(records[index[j]], float(scores[k]), values[k], vectors[j], why, model, now,
                                   threshold, scorer, how)  # fmt: skip
            outputs[index[j]] = messages
            cached[j] = encode_messages(messages)
        for j in np.flatnonzero(late).tolist():
            messages = [self._late_message(records[index[j]], rows.user_id[j])]
            outputs[index[j]] = messages
            cached[j] = encode_messages(messages)
        for j in np.flatnonzero(duplicate).tolist():
            failure = DecodeFailure(
                "DuplicateTransaction",
                f"transaction_id {rows.transaction_id[j]!r} was already applied (transactions partition@offset "
                f"{batch.duplicate_of[j]}); not folded or scored again",
            )
            messages = [dead_letter(records[index[j]], failure, now, self.topics.dlq)]
            outputs[index[j]] = messages
            cached[j] = encode_messages(messages)
        for j in np.flatnonzero(replayed).tolist():
            stored = batch.cached_outputs[j]
            if stored is None:
                counts.replayed_uncached += 1
            else:
                outputs[index[j]] = decode_messages(stored)
        counts.events += n
        counts.scored += len(scored_at)
        counts.alerts += len(raised)
        counts.late += int(late.sum())
        counts.replayed += int(replayed.sum())
        counts.duplicates += int(duplicate.sum())
        counts.dlq += int(duplicate.sum())
        result.event_times_s.extend(rows.timestamp[j].timestamp() for j in scored_at)
        result.record_times_ms.extend(t for i in index if (t := records[i].timestamp_ms) is not None)
        t0 = self.clock.monotonic()
        self.store.commit_batch(batch, cached)
        timings.redis_s += self.clock.monotonic() - t0

    def _policy(self, model: ScoringModel) -> Any:
        """The model's scoring policy with the settings' explicit scorer/weight (models/policy.py), once per version."""
        cached = self._policies.get(model.version)
        if cached is None:
            cached = model.serving_policy(self.cfg.scorer, self.cfg.blend_mlp_weight)
            self._policies = {model.version: cached}
        return cached

    def _score(
        self, model: ScoringModel, vectors: np.ndarray, rows: np.ndarray, timings: BatchTimings, policy: Any
    ) -> np.ndarray:
        """One model call per micro-batch of at most micro_batch_max_size rows, never per event."""
        scores = np.empty(len(rows), dtype=np.float64)
        size = self.cfg.micro_batch_max_size
        t0 = self.clock.monotonic()
        for lo in range(0, len(rows), size):
            chunk = rows[lo : lo + size]
            out = np.asarray(model.score(vectors[chunk], policy.scorer, policy.blend_mlp_weight), dtype=np.float64)
            if out.shape != (len(chunk),):
                raise ModelError(f"model {model.version} returned {out.shape} scores for {len(chunk)} rows")
            scores[lo : lo + len(chunk)] = out
            timings.score_calls += 1
        timings.score_s += self.clock.monotonic() - t0
        return finished_scores(model, scores)

    def _explain(self, model: ScoringModel, X: np.ndarray, policy: Any) -> tuple[list[list[Reason]], list[Explanation]]:
        return explanations_of(model, X, self.cfg.top_reasons, policy.scorer, policy.blend_mlp_weight,
                               self.cfg.mlp_attribution, self.explain_threads)

    def _alert(
        self,
        record: RawRecord,
        score: float,
        score_value: bytes,
        vector: np.ndarray,
        reasons: list[Any],
        model: ScoringModel,
        now: Any,
        threshold: float,
        scorer: str,
        explanation: Explanation,
    ) -> list[OutputMessage]:
        """An alerted transaction's alert and score messages (the Transaction model built here only, from the
        record's bytes that the batch decoder accepted)."""
        txn = Transaction.model_validate_json(record.value or b"")
        key = txn.user_id.encode()
        features = {n: float(v) for n, v in zip(model.feature_names, vector, strict=False) if math.isfinite(v)}
        alert = Alert.for_transaction(
            txn,
            score=score,
            threshold=threshold,
            model_version=model.version,
            scorer=scorer,
            reasons=reasons,
            features=features,
            produced_at=now,
            explanation=explanation,
        )
        return [
            OutputMessage(self.topics.alerts, key, alert.model_dump_json().encode(), _ALERT_HEADERS),
            OutputMessage(self.topics.scores, key, score_value, _SCORE_HEADERS),
        ]

    def _late_message(self, record: RawRecord, user_id: str) -> OutputMessage:
        headers = [(name, value or b"") for name, value in record.headers if name != LATE_REASON_HEADER]
        grace = self.settings.features.grace_period_s
        headers.append((LATE_REASON_HEADER, f"older than the user's latest event minus {grace:.0f} s".encode()))
        return OutputMessage(self.topics.late, record.key or user_id.encode(), record.value or b"", headers)
