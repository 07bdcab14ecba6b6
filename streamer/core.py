"""The framework-free stream core: raw records in; DLQ, late, score and alert messages out, state in the store.

Both engines (confluent-kafka, faust) call StreamProcessor.process on a batch and then produce the messages and
commit the offsets in `BatchResult.next_offsets`. Bad records never raise; a Redis failure (StateStoreError) does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fraudstream.clock import Clock
from fraudstream.contracts import CONTEXT_MAX_FUTURE_SKEW_S, CONTEXT_NOW, Alert, Label, Reason, Transaction
from fraudstream.errors import ModelError
from fraudstream.settings import Settings
from state.store import FeatureStore, LabelRecord, SourceRecord
from streamer.outputs import OutputMessage, contract_headers, decode_messages, encode_messages, score_json
from streamer.reasons import explain
from streamer.validation import DecodeFailure, dead_letter, decode_records

if TYPE_CHECKING:
    from streamer.metrics import StreamMetrics

__all__ = ["BatchCounts", "BatchResult", "BatchTimings", "OutputMessage", "RawRecord", "StreamProcessor"]

log = logging.getLogger(__name__)

LATE_REASON_HEADER = "late-reason"
SCORE_DECIMALS = 9
_ALERT_HEADERS = contract_headers("alert")
_SCORE_HEADERS = contract_headers("score")
_PENDING = DecodeFailure("Pending", "not decoded yet")  # every pending slot is filled by _decode


@dataclass(frozen=True)
class RawRecord:
    """One consumed Kafka record, engine-neutral."""

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
    dlq: int = 0
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
    """The top reasons of each row of X (contributions rounded as the scores are), as alerts carry them."""
    contributions = np.round(np.asarray(model.contributions(X), dtype=np.float64), SCORE_DECIMALS)
    return explain(model.feature_names, X, contributions, top)


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
        self.store = store
        self.models = models
        self.clock = clock
        self.metrics = metrics

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        start = self.clock.monotonic()
        now = self.clock.now()
        model = self.models.model  # one model for the whole batch: swaps happen between batches
        counts, timings = BatchCounts(), BatchTimings()
        per_record: list[list[OutputMessage]] = [[] for _ in records]
        next_offsets: dict[tuple[str, int], int] = {}
        txn_index: list[int] = []
        sources: list[SourceRecord] = []
        labels: list[LabelRecord] = []
        decoded = self._decode(records, now)
        for i, record in enumerate(records):
            tp = (record.topic, record.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), record.offset + 1)
            parsed = decoded[i]
            if isinstance(parsed, DecodeFailure):
                per_record[i].append(dead_letter(record, parsed, now, self.topics.dlq))
                counts.dlq += 1
            elif isinstance(parsed, Transaction):
                txn_index.append(i)
                sources.append(SourceRecord(record.partition, record.offset, parsed))
            else:
                labels.append(LabelRecord(record.partition, record.offset, parsed))
        if labels:
            t0 = self.clock.monotonic()
            self.store.apply_labels(labels)
            timings.redis_s += self.clock.monotonic() - t0
            counts.labels = len(labels)
        result = BatchResult([], counts, timings, next_offsets, model_version=model.version)
        if sources:
            self._transactions(records, sources, txn_index, per_record, model, now, result)
        result.messages = [message for outputs in per_record for message in outputs]
        timings.total_s = self.clock.monotonic() - start
        if self.metrics is not None:
            self.metrics.observe_batch(result)
        return result

    def _decode(self, records: Sequence[RawRecord], now: Any) -> list[Transaction | Label | DecodeFailure]:
        """Every record decoded and checked (headers, strict contract per batch, duplicate keys, key == user_id)."""
        out: list[Transaction | Label | DecodeFailure] = [
            DecodeFailure("UnexpectedTopic", f"topic {r.topic} is neither transactions nor labels")
            if r.topic not in (self.topics.transactions, self.topics.labels) else _PENDING for r in records
        ]
        context = {CONTEXT_NOW: now, CONTEXT_MAX_FUTURE_SKEW_S: self.cfg.max_future_skew_s}
        txns = [i for i, r in enumerate(records) if r.topic == self.topics.transactions]
        for i, txn in zip(txns, decode_records(Transaction, [records[i] for i in txns], context), strict=True):
            out[i] = txn
        labels = [i for i, r in enumerate(records) if r.topic == self.topics.labels]
        for i, label in zip(labels, decode_records(Label, [records[i] for i in labels], None, False), strict=True):
            out[i] = label
        return out

    def _transactions(
        self,
        records: Sequence[RawRecord],
        sources: list[SourceRecord],
        txn_index: list[int],
        per_record: list[list[OutputMessage]],
        model: ScoringModel,
        now: Any,
        result: BatchResult,
    ) -> None:
        counts, timings = result.counts, result.timings
        t0 = self.clock.monotonic()
        batch = self.store.prepare_batch(sources)
        timings.redis_s += self.clock.monotonic() - t0
        late = np.asarray(batch.late, dtype=bool)
        replayed = np.asarray(batch.replayed, dtype=bool)
        rows = np.flatnonzero(~late & ~replayed)
        scores = self._score(model, np.asarray(batch.vectors, dtype=np.float64), rows, timings)
        scorer = self.cfg.scorer
        if scorer not in model.thresholds:
            raise ModelError(f"model {model.version} has no threshold for scorer '{scorer}'; pick another scorer")
        threshold = float(model.thresholds[scorer])
        alerted = rows[scores >= threshold]
        position = np.full(len(sources), -1, dtype=np.intp)
        position[rows] = np.arange(len(rows))
        reasons = self._reasons(model, batch.vectors, alerted)
        outputs: list[bytes | None] = []
        for j, source in enumerate(sources):
            i = txn_index[j]
            record = records[i]
            if record.timestamp_ms is not None:
                result.record_times_ms.append(record.timestamp_ms)
            if replayed[j]:
                counts.replayed += 1
                cached = batch.cached_outputs[j]
                if cached is None:
                    counts.replayed_uncached += 1
                else:
                    per_record[i] = decode_messages(cached)
                outputs.append(None)
                continue
            if late[j]:
                counts.late += 1
                per_record[i] = [self._late_message(record, source.txn)]
            else:
                score = scores[position[j]]
                per_record[i] = self._scored_messages(
                    source.txn, float(score), threshold, model, batch.vectors[j], reasons.get(j), now
                )
                counts.scored += 1
                counts.alerts += int(j in reasons)
                result.event_times_s.append(source.txn.timestamp.timestamp())
            outputs.append(encode_messages(per_record[i]))
        counts.events += len(sources)
        t0 = self.clock.monotonic()
        self.store.commit_batch(batch, outputs)
        timings.redis_s += self.clock.monotonic() - t0

    def _score(self, model: ScoringModel, vectors: np.ndarray, rows: np.ndarray, timings: BatchTimings) -> np.ndarray:
        """One model call per micro-batch of at most micro_batch_max_size rows, never per event."""
        scores = np.empty(len(rows), dtype=np.float64)
        size = self.cfg.micro_batch_max_size
        t0 = self.clock.monotonic()
        for lo in range(0, len(rows), size):
            chunk = rows[lo : lo + size]
            out = np.asarray(model.score(vectors[chunk], self.cfg.scorer, self.cfg.blend_mlp_weight), dtype=np.float64)
            if out.shape != (len(chunk),):
                raise ModelError(f"model {model.version} returned {out.shape} scores for {len(chunk)} rows")
            scores[lo : lo + len(chunk)] = out
            timings.score_calls += 1
        timings.score_s += self.clock.monotonic() - t0
        return finished_scores(model, scores)

    def _reasons(self, model: ScoringModel, vectors: np.ndarray, alerted: np.ndarray) -> dict[int, list[Any]]:
        if len(alerted) == 0:
            return {}
        texts = reasons_of(model, np.asarray(vectors, dtype=np.float64)[alerted], self.cfg.top_reasons)
        return {int(j): reasons for j, reasons in zip(alerted, texts, strict=True)}

    def _scored_messages(
        self,
        txn: Transaction,
        score: float,
        threshold: float,
        model: ScoringModel,
        vector: np.ndarray,
        reasons: list[Any] | None,
        now: Any,
    ) -> list[OutputMessage]:
        key = txn.user_id.encode()
        alerted = reasons is not None
        messages = []
        if reasons is not None:
            features = {n: float(v) for n, v in zip(model.feature_names, vector, strict=False) if math.isfinite(v)}
            alert = Alert.for_transaction(
                txn,
                score=score,
                threshold=threshold,
                model_version=model.version,
                scorer=self.cfg.scorer,
                reasons=reasons,
                features=features,
                produced_at=now,
            )
            messages.append(OutputMessage(self.topics.alerts, key, alert.model_dump_json().encode(), _ALERT_HEADERS))
        value = score_json(txn, score, threshold, alerted, model.version, self.cfg.scorer, now)
        messages.append(OutputMessage(self.topics.scores, key, value, _SCORE_HEADERS))
        return messages

    def _late_message(self, record: RawRecord, txn: Transaction) -> OutputMessage:
        headers = [(name, value or b"") for name, value in record.headers if name != LATE_REASON_HEADER]
        grace = self.settings.features.grace_period_s
        headers.append((LATE_REASON_HEADER, f"older than the user's latest event minus {grace:.0f} s".encode()))
        return OutputMessage(self.topics.late, record.key or txn.user_id.encode(), record.value or b"", headers)
