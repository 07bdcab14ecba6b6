"""`run_backtest`: prepare, replay in isolation (cleaned up unless keep), join scores to labels, write the report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.folds import FoldModel
from backtest.isolation import drop_kafka_names, drop_redis_namespace, isolated_settings, new_run_id
from backtest.metrics import known_compromised
from backtest.replay import ReplayStats
from backtest.report import PROTOCOLS, SCORE_COLUMNS, fold_table, write_report
from backtest.runner import (
    Advance,
    BacktestOptions,
    Prepared,
    Say,
    assessed_rows,
    check_state,
    prepare,
    stream_scores,
)
from fraudstream.clock import Clock, SystemClock
from fraudstream.errors import FraudstreamError
from fraudstream.settings import Settings

log = logging.getLogger(__name__)


def scores_table(prep: Prepared, scores: pd.DataFrame, label_delay_days: float = 7.0) -> pd.DataFrame:
    """Every assessed transaction with its stream score (NaN when the stream gave none), its label and whether its
    card was already known to be compromised that day (frauds since the fold's training start, labels delayed)."""
    frame = prep.history.frame
    rows = assessed_rows(frame, prep.windows)
    first = frame["timestamp"].iloc[0]
    since = {w.index: w.train_start if w.train_start is not None else first for w in prep.windows}
    frauds = frame.loc[frame["is_fraud"].astype(bool), ["user_id", "timestamp"]]
    rows = rows.assign(known_compromised=known_compromised(rows, frauds, since, label_delay_days))
    columns = ["transaction_id", "user_id", "timestamp", "is_fraud", "fold", "known_compromised"]
    table = rows[columns].rename(columns={"is_fraud": "label"})
    table = table.merge(scores, on="transaction_id", how="left", validate="one_to_one")
    table["alerted"] = table["alerted"].fillna(False).astype(bool)
    table["label"] = table["label"].astype("int8")
    table["timestamp"] = table["timestamp"].dt.as_unit("ns")
    return table.loc[:, list(SCORE_COLUMNS)].reset_index(drop=True)


def cleanup(settings: Settings, *, kafka: bool, redis: bool = True) -> dict[str, Any]:
    removed: dict[str, Any] = {"redis_keys": drop_redis_namespace(settings) if redis else 0}
    if kafka:
        group = settings.streamer.consumer_group
        drop_kafka_names(settings, [group, f"{group}.reader"])
        removed["topics"] = settings.topics.all_topics()
        removed["consumer_groups"] = [group]
    return removed


def _cleanup_quietly(settings: Settings, *, kafka: bool, redis: bool = True) -> None:
    """Cleanup after a failure: its own errors are logged, so they never hide the failure itself."""
    try:
        cleanup(settings, kafka=kafka, redis=redis)
    except FraudstreamError as exc:
        log.warning("backtest cleanup failed too (%s); remove %s:* by hand", exc, settings.redis.namespace)


def run_backtest(
    settings: Settings,
    opts: BacktestOptions,
    *,
    say: Say = lambda _m: None,
    on_total: Callable[[int], None] | None = None,
    advance: Advance | None = None,
    clock: Clock | None = None,
) -> tuple[dict[str, Any], list[Path]]:
    """The whole run; returns the report dict and the files written under opts.report_dir."""
    check_state(opts.fast, opts.state)
    began = time.perf_counter()
    clock = clock or SystemClock()
    run_id = opts.run_id or new_run_id(clock.now())
    isolated = isolated_settings(
        settings, run_id, partitions=opts.partitions or settings.topics.partitions, batch_size=opts.batch_size
    )
    prep = prepare(settings, opts, say)
    say(f"replaying through the stream core ({'fast' if opts.fast else 'kafka'}) as run {run_id}")
    try:
        scores, stats = stream_scores(
            isolated,
            prep,
            fast=opts.fast,
            label_delay_days=opts.label_delay_days,
            batch_size=opts.batch_size,
            on_total=on_total,
            advance=advance,
            state=opts.state,
        )
        fold_models = prep.fold_models()
    except BaseException:
        prep.close()
        if not opts.keep:
            _cleanup_quietly(isolated, kafka=not opts.fast, redis=opts.state == "redis")
        raise
    prep.close()
    removed = {"kept": True} if opts.keep else cleanup(isolated, kafka=not opts.fast, redis=opts.state == "redis")
    say("computing metrics and writing the report")
    table = scores_table(prep, scores, opts.label_delay_days)
    report = assemble(settings, opts, run_id, prep, fold_models, table, stats, removed)
    fit_s = sum(f.fit_seconds for f in fold_models)
    report["timings"] = {
        **prep.timings,
        **({"fold_training_s": fit_s} if fold_models else {}),
        "replay_s": stats.seconds,
        "total_s": time.perf_counter() - began,
    }
    from backtest.drift_days import references_of

    references = references_of([prep.model(k) for k in range(len(prep.windows))], report["run"]["scorer"] or "mlp")
    written = write_report(opts.report_dir, table, report, drift_references=references,
                           psi_threshold=settings.drift.psi_threshold)  # fmt: skip
    return report, written


def assemble(
    settings: Settings,
    opts: BacktestOptions,
    run_id: str,
    prep: Prepared,
    fold_models: list[FoldModel],
    table: pd.DataFrame,
    stats: ReplayStats,
    removed: dict[str, Any],
) -> dict[str, Any]:
    frame = prep.history.frame
    folds = []
    for k, w in enumerate(prep.windows):
        entry: dict[str, Any] = {**w.as_dict(), "threshold": prep.threshold(k), "model_version": prep.model(k).version}
        if fold_models:
            fm = fold_models[k]
            entry |= {"train_rows": fm.train_rows, "train_frauds": fm.train_frauds, "fit_s": round(fm.fit_seconds, 1)}
            entry["offline_metrics"] = fm.offline_metrics
            joined = table[table["fold"] == k].set_index("transaction_id")["score"]
            diff = (joined - fm.offline_scores.reindex(joined.index)).abs()
            entry["max_abs_score_difference"] = float(diff.max()) if len(diff) else None
        folds.append(entry)
    fold_rows, overall, book = fold_table(table, folds)
    missing = int(table["score"].isna().sum())
    if missing:
        log.warning("%d assessed transactions got no score from the stream (late or dead-lettered)", missing)
    return {
        "run": {
            "run_id": run_id,
            "input": prep.history.source,
            "mode": "fast" if opts.fast else "kafka",
            "state": opts.state,
            "models": f"walk-forward ({len(prep.windows)} folds)" if fold_models else f"registry {prep.fixed.version}",
            "scorer": prep.scorer or settings.streamer.scorer,
            "label_delay_days": opts.label_delay_days,
            "feature_label_delay_days": settings.features.label_delay_days,
            "protocol": opts.protocol,
            "config": str(opts.config) if opts.config else None,
            "batch_size": opts.batch_size,
            "partitions": opts.partitions or settings.topics.partitions,
            "redis_namespace": f"bt-{run_id}" if opts.state == "redis" else None,
            "topics_prefix": f"backtest.{run_id}",
            "cleanup": removed,
        },
        "data": {
            "transactions": len(frame),
            "frauds": int(frame["is_fraud"].sum()),
            "first": str(frame["timestamp"].iloc[0]),
            "last": str(frame["timestamp"].iloc[-1]),
            "duplicates_dropped": prep.history.duplicates_dropped,
            "rejected_rows": prep.history.rejected_rows,
        },
        "coverage": {"assessed": len(table), "scored": len(table) - missing, "missing": missing},
        "folds": fold_rows,
        "overall": overall,
        "book": book,
        "protocols": PROTOCOLS,
        "replay": [stats.as_dict()],
    }
