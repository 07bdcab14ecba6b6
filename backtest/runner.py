"""One backtest run: input -> windows -> models (registry version or walk-forward training) -> isolated replay through
the stream core (fast or Kafka) -> scores of the assessed windows -> report. Isolated names are removed at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from models.registry import ModelRegistry

from backtest.events import EventStream
from backtest.fold_source import FoldSource
from backtest.folds import FoldModel
from backtest.replay import FixedClock, ReplayStats, ScoreSink, SwitchableModels, replay_fast, segments
from backtest.windows import HANDBOOK_WARMUP_DAYS, FoldWindow, fixed_window, walk_forward
from bankbus.topic_history import History
from fraudstream.errors import ConfigError, InfraError, InputError
from fraudstream.settings import Settings

Say = Callable[[str], None]
Advance = Callable[[int], None]


@dataclass(frozen=True)
class BacktestOptions:
    report_dir: Path
    history: Path | None = None
    fmt: str | None = None
    mapping: Path | None = None
    from_topic: bool = False
    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None  # a registry version or "current"; None: walk-forward
    registry: Path | None = None
    assess_start: datetime | None = None
    assess_end: datetime | None = None
    protocol: str | None = None  # "handbook"
    train_days: int | None = None
    train_inline: bool = False  # train folds in this process before each is needed (default: a forked process)
    delay_days: int = 7
    test_days: int = 7
    folds: int | None = None
    first_test_start: datetime | None = None
    warmup_days: int | None = None
    config: Path | None = None
    label_delay_days: float = 7.0
    fast: bool = False
    state: str = "redis"  # the fast replay's store: redis (the run's namespace) or memory (this process only)
    keep: bool = False
    batch_size: int = 20_000
    partitions: int | None = None
    run_id: str | None = None


@dataclass
class Prepared:
    """Everything before the replay: history, windows, and where each window's model comes from (one registry
    version for all, or the walk-forward folds, trained while the replay runs)."""

    history: History
    windows: list[FoldWindow]
    fixed: Any = None  # models.loaded.LoadedModel for --model
    fixed_threshold: float = float("nan")
    folds: FoldSource | None = None
    timings: dict[str, float] = field(default_factory=dict)
    scorer: str | None = None  # the policy's scorer (models/policy.py) the replay serves

    def model(self, k: int) -> Any:
        if self.folds is None:
            return self.fixed
        return self.folds.get(k).model

    def threshold(self, k: int) -> float:
        return self.fixed_threshold if self.folds is None else self.folds.get(k).threshold

    def fold_models(self) -> list[FoldModel]:
        return [] if self.folds is None else [self.folds.get(k) for k in range(len(self.windows))]

    def close(self) -> None:
        if self.folds is not None:
            self.folds.close()


def load_input(settings: Settings, opts: BacktestOptions) -> History:
    if opts.from_topic:
        from bankbus.topic_history import load_topic_history

        if opts.start is None or opts.end is None:
            raise InputError("--from-topic needs --start and --end (the time range of the transactions topic)")
        return load_topic_history(settings, opts.start, opts.end)
    if opts.history is None:
        raise InputError("give --history FILE|FOLDER or --from-topic with --start/--end")
    from backtest.inputs import load_history

    return load_history(opts.history, fmt=opts.fmt, mapping_file=opts.mapping, start=opts.start, end=opts.end)


def plan_windows(frame: pd.DataFrame, opts: BacktestOptions, version: str | None) -> list[FoldWindow]:
    first, last = frame["timestamp"].iloc[0], frame["timestamp"].iloc[-1]
    if opts.model is not None:
        if opts.protocol or opts.train_days:
            raise ConfigError("--model scores with one registry version; drop --protocol/--train-days (walk-forward)")
        return fixed_window(first, last, version or opts.model, _ts(opts.assess_start), _ts(opts.assess_end))
    if opts.protocol not in (None, "handbook"):
        raise ConfigError(f"--protocol '{opts.protocol}' is unknown; the built-in protocol is 'handbook'")
    if opts.protocol is None and opts.train_days is None:
        raise ConfigError("give --model VERSION|current, or walk-forward: --protocol handbook or --train-days N")
    handbook = opts.protocol == "handbook"
    warmup = opts.warmup_days if opts.warmup_days is not None else (HANDBOOK_WARMUP_DAYS if handbook else 0)
    return walk_forward(
        first,
        last,
        train_days=opts.train_days or 7,
        delay_days=opts.delay_days,
        test_days=opts.test_days,
        folds=opts.folds,
        first_test_start=_ts(opts.first_test_start),
        warmup_days=warmup,
    )


def _ts(value: datetime | None) -> pd.Timestamp | None:
    from backtest.windows import utc

    return None if value is None else utc(value)


def assessed_rows(frame: pd.DataFrame, windows: list[FoldWindow]) -> pd.DataFrame:
    """The rows inside an assessed window, with their fold index; InputError when none or no fraud among them."""
    ts = frame["timestamp"]
    fold = np.full(len(frame), -1, dtype=np.int64)
    for w in windows:
        fold[((ts >= w.test_start) & (ts < w.test_end)).to_numpy()] = w.index
    rows = frame.assign(fold=fold)[fold >= 0]
    if rows.empty:
        raise InputError("no transactions fall in the assessed windows; check the range and the window options")
    if not rows["is_fraud"].any():
        raise InputError("the assessed windows hold no labelled fraud; AP, recall and CP@k need at least one")
    return rows


def prepare(settings: Settings, opts: BacktestOptions, say: Say) -> Prepared:
    """Read the input and get a model per window (load it, or train the folds into a private registry)."""
    from models.registry import ModelRegistry

    t0 = time.perf_counter()
    say("reading the input")
    history = load_input(settings, opts)
    timings = {"load_s": time.perf_counter() - t0}
    scorer = settings.streamer.scorer
    if opts.model is not None:  # the version's policy (models/policy.py), with the settings' explicit scorer/weight
        registry = ModelRegistry.from_settings(settings, opts.registry)
        version = registry.current_version() if opts.model == "current" else opts.model
        if version is None:
            raise InputError(f"registry {registry.root} has no current model; train one or give --model VERSION")
        model = registry.load(version)
        windows = plan_windows(history.frame, opts, version)
        assessed_rows(history.frame, windows)
        if scorer is not None and scorer not in model.thresholds:
            raise ConfigError(f"model {version} has no '{scorer}' scorer; set FRAUD_STREAMER__SCORER to one it has")
        policy = model.serving_policy(scorer, settings.streamer.blend_mlp_weight)
        return Prepared(history, windows, model, float(policy.threshold), timings=timings, scorer=policy.scorer)
    from backtest.fold_source import ForkedFolds, InlineFolds
    from backtest.folds import FoldTrainer
    from features.config import FeatureConfig
    from training.config import load_training_config

    windows = plan_windows(history.frame, opts, None)
    assessed_rows(history.frame, windows)
    t1 = time.perf_counter()
    cfg = load_training_config(opts.config)
    # the fold models are trained here: the policy is the training config's, with the settings' scorer/weight
    # applied before the thresholds are calibrated (so they are calibrated for exactly what is served)
    weight = settings.streamer.blend_mlp_weight
    trainer = FoldTrainer(
        history.frame,
        cfg,
        FeatureConfig.from_settings(settings.features),
        private_registry(settings, opts.report_dir / "registry"),
        scorer=scorer or cfg.policy_scorer,
        blend_mlp_weight=cfg.blend_mlp_weight if weight is None else weight,
        say=say,
    )
    timings["features_s"] = time.perf_counter() - t1
    if opts.train_inline:
        source: FoldSource = InlineFolds(trainer, windows)
    else:
        say(f"training {len(windows)} folds in a background process while the replay runs")
        source = ForkedFolds(trainer, windows, opts.report_dir / "registry" / "folds")
    return Prepared(history, windows, folds=source, timings=timings, scorer=trainer.scorer)


def check_state(fast: bool, state: str) -> None:
    """ConfigError unless `state` is a store the replay mode can use (run_backtest checks it before anything runs;
    the CLI before it waits for Redis)."""
    if state not in ("redis", "memory"):
        raise ConfigError(f"--state must be redis or memory (got '{state}')")
    if state == "memory" and not fast:
        raise ConfigError("--state memory needs --fast: the Kafka replay runs the real worker on Redis")


def stream_scores(
    settings: Settings,
    prep: Prepared,
    *,
    fast: bool,
    label_delay_days: float,
    batch_size: int,
    on_total: Callable[[int], None] | None = None,
    advance: Advance | None = None,
    state: str = "redis",
) -> tuple[pd.DataFrame, ReplayStats]:
    """Replay the history through the core with `settings` (already isolated); the scores of the assessed windows.

    state: the store behind the core, `redis` (the run's namespace on the settings' Redis) or, for the fast replay
    only, `memory` (state.memory.InMemoryFeatureStore: the same KeyValueFeatureStore logic, key layout and folds
    over dicts in this process, so no Redis round trip per batch; nothing outlives the run)."""
    from features.config import FeatureConfig
    from streamer.core import StreamProcessor

    frame = prep.history.frame
    delay = pd.Timedelta(days=label_delay_days)
    stream = EventStream(frame, delay, settings.topics)
    features = FeatureConfig.from_settings(settings.features)
    client = None
    if state == "memory":
        from state.memory import InMemoryFeatureStore

        store: Any = InMemoryFeatureStore(features, settings.redis.namespace, partitions=settings.topics.partitions,
                                          label_partitions=settings.topics.partitions)  # fmt: skip
    else:
        import redis

        from state.redis_client import redis_client
        from state.redis_store import RedisFeatureStore

        client = redis_client(settings)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise InfraError(
                f"cannot reach Redis at {settings.safe_summary()['redis']['url']} ({exc}); run `fraudstream up`"
            ) from None
        store = RedisFeatureStore(
            client,
            settings.redis.namespace,
            features,
            partitions=settings.topics.partitions,
            label_partitions=settings.topics.partitions,
        )
    switch = SwitchableModels(prep.model(0))
    last = frame["timestamp"].iloc[-1].to_pydatetime()
    clock = FixedClock(last + timedelta(days=label_delay_days + 1))  # after every event: none is 'in the future'
    processor = StreamProcessor(settings, store, switch, clock)
    plan = segments(stream, prep.windows)
    sink = ScoreSink(settings.topics.scores)
    if on_total is not None:
        on_total(plan[-1].hi if plan else 0)
    if fast:
        stats = replay_fast(stream, processor, switch, plan, sink, prep.model, batch_size=batch_size, advance=advance)
    else:
        from backtest.kafka_replay import replay_kafka

        stats = replay_kafka(
            stream,
            settings,
            processor,
            switch,
            plan,
            sink,
            prep.model,
            label_delay_ns=int(delay.value),
            advance=advance,
        )
    stats.extra["store"] = {k: v for k, v in store.counters.items()}
    stats.extra["state"] = state
    if client is not None:
        client.close()
    return sink.frame(), stats


def private_registry(settings: Settings, root: Path) -> ModelRegistry:
    """The backtest's own registry of fold models: signed with the settings' key, or with a key of this run only
    (nothing else loads these versions), so the fold models are verified like any other."""
    import secrets

    from models.registry import ModelRegistry
    from models.signing import RegistryTrust

    key = settings.registry.signing_key
    trust = RegistryTrust.of(key if key is not None else secrets.token_hex(32))
    return ModelRegistry(root, trust=trust)
