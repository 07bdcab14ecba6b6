"""The live demo's two helpers: `fraudstream demo split` and `fraudstream demo watch`.

- split: one simulated world cut by day into the history the first model trains on, the warm-up days the streamer
  reads first (so each card's rolling features hold weeks of history, as in production, not a cold start), and
  the live days published while the demo runs.
- watch: the analyst's and the manager's view while the demo runs. It reads `scores` and `alerts` from the demo's
  start (assign(), no consumer group, read_committed), prints each live alert marked with the simulator's truth,
  and every few seconds: alerts per 1,000 transactions, precision and recall of the alerts against the truth,
  fraud cards caught, the threshold and why (the training run's alert budget), next to the model's validation
  figures. On SIGTERM (or SIGINT) it reads what is committed up to the end of each partition, prints the final
  figures and what was left behind (published but not scored, not published), writes them as JSON, and exits.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bankbus.quality import Quality, Truth, quality
from fraudstream.errors import InputError
from fraudstream.settings import Settings

#: Seconds between two quality lines.
EVERY_S = 5.0
#: The most the final read waits for the ends of the partitions after a stop.
FINAL_READ_S = 0.5


def split_world(world: Path, history: Path, warmup: Path, live: Path, *, live_days: int, warmup_days: int
                ) -> tuple[int, int, int]:
    """Cut a simulated file by UTC day: history (all but the last live_days), warm-up (the warmup_days before the
    live days) and live (the last live_days). Returns the row counts."""
    import pandas as pd

    from bankbus.frames import read_canonical, write_canonical

    frame = read_canonical(world)
    days = frame["timestamp"].dt.floor("D")
    last = days.max()
    live_from = last - pd.Timedelta(days=live_days - 1)
    warm_from = live_from - pd.Timedelta(days=warmup_days)
    parts = [(frame[days < live_from], history), (frame[(days >= warm_from) & (days < live_from)], warmup),
             (frame[days >= live_from], live)]
    for part, path in parts:
        if part.empty:
            raise InputError(f"{world} has too few days for {warmup_days} warm-up and {live_days} live days")
        write_canonical(part.reset_index(drop=True), path)
    return len(parts[0][0]), len(parts[1][0]), len(parts[2][0])


@dataclass
class ModelFacts:
    """The current model's threshold, where it came from, and its validation figures (from its manifest)."""

    version: str
    scorer: str
    threshold: float
    alerts_per_day: float | None
    validation: dict[str, float]

    @classmethod
    def of(cls, settings: Settings) -> ModelFacts:
        from models.registry import ModelRegistry

        registry = ModelRegistry(settings.registry.path)
        version = registry.current_version()
        if version is None:
            raise InputError(f"the model registry {settings.registry.path} has no current model")
        manifest = registry.manifest(version)
        from models.policy import policy_of_manifest

        scorer = settings.streamer.scorer or policy_of_manifest(manifest).scorer  # unset: the manifest's policy
        metrics = dict(manifest.get("metrics", {}))
        named = "stack" if scorer == "stack" else scorer
        validation = {k.split(".", 1)[1]: float(v) for k, v in metrics.items()
                      if k.startswith(f"{named}.") and isinstance(v, int | float)}
        thresholds = dict(manifest.get("thresholds", {}))
        if scorer not in thresholds:
            raise InputError(f"model {version} has no threshold for scorer '{scorer}' (it has "
                             f"{', '.join(sorted(thresholds)) or 'none'}); set FRAUD_STREAMER__SCORER to one of them")
        return cls(version, scorer, float(thresholds[scorer]), validation.get("alerts_per_day"), validation)

    def lines(self) -> list[str]:
        v = self.validation
        why = (f"the training run's alert budget: {self.alerts_per_day:g} alerts per day on its validation days"
               if self.alerts_per_day else "set by the training run")
        out = [f"model {self.version}, scorer {self.scorer}: threshold {self.threshold:.3f} ({why})"]
        if v:
            nan = float("nan")
            out.append(
                f"validation: precision {v.get('precision', nan):.1%}, recall {v.get('recall', nan):.1%}"
                f", average precision {v.get('average_precision', nan):.3f}, ROC AUC "
                f"{v.get('roc_auc', nan):.3f} on {int(v.get('n', 0)):,} transactions "
                f"({int(v.get('n_fraud', 0)):,} fraud)"
            )
        return out


@dataclass
class Seen:
    scored: set[str] = field(default_factory=set)
    alerted: set[str] = field(default_factory=set)
    scores_total: int = 0  # every score since the start (warm-up included)


class Watch:
    """The demo's reader of scores and alerts; `run()` returns the final summary once stopped."""

    def __init__(self, settings: Settings, truth: Truth, *, since_ms: int, expected: int, warmup: int,
                 ready: Path | None, summary: Path | None, echo: Callable[[str], None] = print,
                 every_s: float = EVERY_S) -> None:
        self.settings, self.truth = settings, truth
        self.since_ms, self.expected, self.warmup = since_ms, expected, warmup
        self.ready, self.summary_path = ready, summary
        self.echo, self.every_s = echo, every_s
        self.seen = Seen()
        self.stopping = False
        self.facts: ModelFacts | None = None  # read once Kafka answers
        self._started = time.monotonic()
        self._live_since: float | None = None if warmup else self._started
        self._txn_starts: list[Any] = []
        self._starts: dict[tuple[str, int], int] = {}
        self._counter: Any = None

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def _consumer(self) -> tuple[Any, dict[tuple[str, int], int]]:
        from confluent_kafka import Consumer, TopicPartition

        from fraudstream.infra.topics import partition_count
        from fraudstream.kafka_config import consumer_config

        s = self.settings
        consumer = Consumer(consumer_config(s, f"fraudstream-demo-watch-{int(time.time() * 1000)}",
                                            **{"enable.auto.offset.store": False}))
        wanted = [TopicPartition(t, p, self.since_ms) for t in (s.topics.scores, s.topics.alerts)
                  for p in range(partition_count(s, t))]
        starts = consumer.offsets_for_times(wanted, timeout=s.kafka.request_timeout_s)
        consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -1) for tp in starts])
        self._counter = Consumer(consumer_config(s, f"fraudstream-demo-count-{int(time.time() * 1000)}"))
        self._counter.list_topics(s.topics.transactions, timeout=s.kafka.request_timeout_s)  # connected now
        txn = s.topics.transactions
        self._txn_starts = [TopicPartition(txn, p) for p in range(partition_count(s, txn))]
        return consumer, {(tp.topic, tp.partition): tp.offset for tp in starts}

    def run(self) -> dict[str, Any]:
        signal.signal(signal.SIGTERM, self.stop)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job of the demo ignores it: the
            signal.signal(signal.SIGINT, self.stop)  # script stops the streamer first, then sends SIGTERM here
        consumer, self._starts = self._consumer()
        self.facts = ModelFacts.of(self.settings)
        for line in self.facts.lines():
            self.echo(line)
        last = time.monotonic()
        try:
            while not self.stopping:
                self._take(consumer.consume(num_messages=500, timeout=0.2))
                if time.monotonic() - last >= self.every_s:
                    last = time.monotonic()
                    self.echo(self._progress_line())
            self._final_read(consumer)
            left = self._left_behind()
        finally:
            consumer.close()
            self._counter.close()
        return self._finish(left)

    def _take(self, messages: list[Any], *, show: bool = True) -> None:
        topics = self.settings.topics
        for message in messages:
            if message.error() is not None:
                continue
            value = message.value() or b""
            if message.topic() == topics.scores:
                self.seen.scores_total += 1
                record = json.loads(value)
                txn_id = record.get("transaction_id")
                if txn_id in self.truth:
                    self.seen.scored.add(txn_id)
                    if record.get("alerted"):
                        self.seen.alerted.add(txn_id)
                if self._live_since is None and self.seen.scores_total >= self.warmup:
                    self._warm()
            elif message.topic() == topics.alerts and show:
                self._show_alert(value)

    def _warm(self) -> None:
        self._live_since = time.monotonic()
        self.echo(f"features warm: {self.seen.scores_total:,} warm-up transactions scored in "
                  f"{self._live_since - self._started:.0f} s; live traffic starts")
        if self.ready is not None:
            self.ready.touch()

    def _show_alert(self, value: bytes) -> None:
        from fraudstream.contracts import Alert
        from streamer.alert_reader import format_alert

        alert = Alert.model_validate_json(value)
        txn_id = alert.transaction.transaction_id
        if txn_id in self.truth:
            mark = "FRAUD" if txn_id in self.truth.frauds else "legit"
            self.echo(f"  alert [{mark}] {format_alert(alert)}")

    def _progress_line(self) -> str:
        if self._live_since is None:
            return f"warming the features: {self.seen.scores_total:,}/{self.warmup:,} warm-up transactions scored"
        return f"[{time.monotonic() - self._live_since:4.0f} s live] {self.quality().line()}"

    def quality(self) -> Quality:
        return quality(self.truth, self.seen.scored, self.seen.alerted)

    def _final_read(self, consumer: Any) -> None:
        """Everything committed up to the ends of the partitions (the streamer has stopped), at most FINAL_READ_S."""
        from confluent_kafka import TopicPartition

        deadline = time.monotonic() + FINAL_READ_S
        while time.monotonic() < deadline:
            messages = consumer.consume(num_messages=5000, timeout=0.05)
            self._take(messages, show=False)
            # the ends as of the last fetch responses (a request of its own would queue behind the long-poll fetches)
            ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), cached=True)[1] for tp in consumer.assignment()}
            positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(consumer.assignment())}
            # read to its end; or one short of it with nothing more coming (a transaction's commit marker is last)
            slack = 0 if messages else 1
            if all(positions.get(key, -1) >= high - slack or (positions.get(key, -1) < 0 and self._starts.get(key, -1)
                   in (-1, high)) for key, high in ends.items()):
                break

    def _left_behind(self) -> dict[str, int]:
        """Transactions published since the start, and how many of them have no score (lag, late, dead letters).
        Asked through a consumer of its own that fetches nothing, so the requests are answered at once."""
        from confluent_kafka import TopicPartition

        timeout, counter = self.settings.kafka.request_timeout_s, self._counter
        stamps = [TopicPartition(tp.topic, tp.partition, self.since_ms) for tp in self._txn_starts]
        published = 0
        for tp in counter.offsets_for_times(stamps, timeout=timeout):
            _low, high = counter.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            published += max(high - tp.offset, 0) if tp.offset >= 0 else 0
        return {"published": published, "not_scored": max(published - self.seen.scores_total, 0),
                "not_published": max(self.expected - published, 0)}

    def _finish(self, left: dict[str, int]) -> dict[str, Any]:
        q, facts = self.quality(), self.facts
        assert facts is not None
        self.echo(f"final: {q.line()}")
        for line in facts.lines():
            self.echo(line)
        self.echo(
            f"left behind: {left['not_scored']:,} of the {left['published']:,} transactions published stay in "
            f"{self.settings.topics.transactions} without a score (the next run ignores them: it starts a group of "
            f"its own at its start time); {left['not_published']:,} of the {self.expected:,} simulated were not "
            "published"
        )
        summary = {"quality": q.as_dict(), "left_behind": left, "threshold": facts.threshold,
                   "scorer": facts.scorer, "model_version": facts.version,
                   "alerts_per_day_budget": facts.alerts_per_day, "validation": facts.validation}
        if self.summary_path is not None:
            self.summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        return summary
