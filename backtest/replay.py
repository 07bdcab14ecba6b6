"""Driving the stream core through history: segments (one model each), the fast driver, and collecting the scores.

Every event from the start of the data goes through StreamProcessor.process (so each user's and terminal's state
holds all earlier history); scores are kept only for the assessed windows. The model switches between batches at
each fold's test start; before the first window the first fold's model scores the warm-up (those scores are dropped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import msgspec
import pandas as pd

from backtest.events import EventStream
from backtest.windows import FoldWindow
from streamer.core import BatchCounts, OutputMessage, ScoringModel, StreamProcessor

Advance = Callable[[int], None]


class SwitchableModels:
    """The core's ModelProvider: the backtest sets the model between batches (never inside one)."""

    def __init__(self, model: ScoringModel) -> None:
        self._model = model

    @property
    def model(self) -> ScoringModel:
        return self._model

    def use(self, model: ScoringModel) -> None:
        self._model = model


class FixedClock:
    """now() is a fixed instant after the data (deterministic produced_at; no event is 'in the future');
    monotonic() is real, for timings."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return time.monotonic()


ModelOf = Callable[[int], ScoringModel]


@dataclass(frozen=True)
class Segment:
    lo: int  # event positions [lo, hi)
    hi: int
    fold: int  # whose model scores it
    keep: bool  # inside an assessed window: keep its scores


def segments(stream: EventStream, windows: list[FoldWindow]) -> list[Segment]:
    """Cut the stream at every window start and end; nothing after the last window is replayed."""
    cuts = sorted(
        {0, *(stream.index_at(w.test_start) for w in windows), *(stream.index_at(w.test_end) for w in windows)}
    )
    starts = [stream.index_at(w.test_start) for w in windows]
    ends = [stream.index_at(w.test_end) for w in windows]
    out = []
    for lo, hi in pairwise(cuts):
        active = [k for k, s in enumerate(starts) if s <= lo]
        keep = any(s <= lo and hi <= e for s, e in zip(starts, ends, strict=True))
        out.append(Segment(lo, hi, active[-1] if active else 0, keep))
    return out


class ScoreFields(msgspec.Struct):
    """The fields of a score record the report needs (the others are skipped by the decoder)."""

    transaction_id: str
    score: float
    alerted: bool
    model_version: str


_SCORE_ARRAY = msgspec.json.Decoder(list[ScoreFields])


@dataclass
class ScoreSink:
    """Score records taken from the `scores` output messages, a batch's values decoded in one call."""

    scores_topic: str
    rows: list[tuple[str, float, bool, str]] = field(default_factory=list)

    def add(self, messages: list[OutputMessage]) -> None:
        topic = self.scores_topic
        self.add_values([m.value for m in messages if m.topic == topic])

    def add_values(self, values: list[bytes]) -> None:
        if values:
            records = _SCORE_ARRAY.decode(b"[" + b",".join(values) + b"]")
            self.rows.extend((r.transaction_id, r.score, r.alerted, r.model_version) for r in records)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["transaction_id", "score", "alerted", "model_version"])
        return frame.drop_duplicates(subset="transaction_id", keep="last")


@dataclass
class ReplayStats:
    mode: str
    events: int = 0
    transactions: int = 0
    labels: int = 0
    dlq: int = 0
    late: int = 0
    replayed: int = 0
    alerts: int = 0
    seconds: float = 0.0
    model_wait_s: float = 0.0  # time spent waiting for a fold's model (training in the background), not replaying
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, model_of: ModelOf, fold: int) -> ScoringModel:
        began = time.perf_counter()
        model = model_of(fold)
        self.model_wait_s += time.perf_counter() - began
        return model

    def add(self, counts: BatchCounts) -> None:
        self.transactions += counts.events
        self.labels += counts.labels
        self.dlq += counts.dlq
        self.late += counts.late
        self.replayed += counts.replayed
        self.alerts += counts.alerts

    @property
    def events_per_s(self) -> float:
        busy = self.seconds - self.model_wait_s
        return self.events / busy if busy > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "events": self.events,
            "transactions": self.transactions,
            "labels": self.labels,
            "dlq": self.dlq,
            "late": self.late,
            "replayed": self.replayed,
            "alerts": self.alerts,
            "seconds": round(self.seconds, 2),
            "model_wait_s": round(self.model_wait_s, 2),
            "events_per_s": round(self.events_per_s, 1),
            **self.extra,
        }


def replay_fast(
    stream: EventStream,
    processor: StreamProcessor,
    switch: SwitchableModels,
    plan: list[Segment],
    sink: ScoreSink,
    model_of: ModelOf,
    *,
    batch_size: int,
    advance: Advance | None = None,
) -> ReplayStats:
    """Batches of `batch_size` events straight into the core (no Kafka), the same core and store as the engines."""
    stats = ReplayStats("fast")
    began = time.perf_counter()
    for seg in plan:
        switch.use(stats.model(model_of, seg.fold))
        for lo in range(seg.lo, seg.hi, batch_size):
            hi = min(lo + batch_size, seg.hi)
            result = processor.process(stream.records(lo, hi))
            stats.add(result.counts)
            stats.events += hi - lo
            if seg.keep:
                sink.add(result.messages)
            if advance is not None:
                advance(hi - lo)
    stats.seconds = time.perf_counter() - began
    return stats
