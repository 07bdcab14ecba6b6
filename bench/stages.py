"""Stage costs, each alone: validation, the Redis feature-state round trip, scoring per batch size, offline
feature building, and training time per model on small simulated data (which also publishes the bench model)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.settings import Settings

SCORING_SIZES = (1, 16, 256, 1024, 4096, 16384, 65536)
STATE_SIZES = (1, 10, 100, 500, 2000)
TRAIN_MODELS = ("logistic_regression", "decision_tree", "random_forest", "gradient_boosting", "mlp", "stack")
TRAIN_PARAMS = {
    "mlp": {"epochs": 8, "batch_size": 256, "patience": 2},
    "stack": {"base_learners": ["dt", "nn"], "n_folds": 3},
    "random_forest": {"n_estimators": 50},
}


def _best_of(fn: Callable[[], Any], repeat: int, budget_s: float = 2.0) -> float:
    """Best wall time of `fn` over up to `repeat` calls (stops early when the budget is spent)."""
    best, spent = float("inf"), 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
        if spent > budget_s:
            break
    return best


def validation(frame: pd.DataFrame, batch: int = 2000) -> dict[str, Any]:
    """Decode + validate a batch of Transaction JSON records three ways: one pydantic call per record, the pydantic
    contract over the batch (one TypeAdapter call), and the core's decoder (the msgspec fast path into columns)."""
    from bankbus.encode import transaction_values
    from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER, Transaction
    from streamer.core import RawRecord
    from streamer.validation import _validate_batch, decode_transaction, decode_transactions

    values = transaction_values(frame.iloc[:batch])
    users = frame["user_id"].astype(str).tolist()[: len(values)]
    headers: list[tuple[str, bytes | None]] = [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode())]
    records = [RawRecord("transactions", 0, i, u.encode(), v, headers)
               for i, (u, v) in enumerate(zip(users, values, strict=True))]
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    context = {"now": now, "max_future_skew_s": 300.0}
    per_record = _best_of(lambda: [decode_transaction(v, now, 300.0) for v in values], 5)
    pydantic_batch = _best_of(lambda: _validate_batch(Transaction, values, context), 5)
    columns = _best_of(lambda: decode_transactions(records, now, 300.0), 10)
    failures, rows = decode_transactions(records, now, 300.0)
    assert not failures and len(rows) == len(values), "the validation stage's records must all be valid"
    n = len(values)
    return {"batch": n, "us_per_event": round(columns / n * 1e6, 2), "events_per_s": round(n / columns),
            "pydantic_per_record_us": round(per_record / n * 1e6, 2),
            "pydantic_batch_us": round(pydantic_batch / n * 1e6, 2)}


def state_round_trip(
    settings: Settings, frame: pd.DataFrame, sizes: tuple[int, ...] = STATE_SIZES
) -> list[dict[str, Any]]:
    """prepare_batch + commit_batch on the real Redis, per batch size (fresh namespace, partition 0, new users)."""
    from features.config import FeatureConfig
    from features.offline import transactions_from_frame
    from state.batch import SourceRecord
    from state.redis_client import redis_client
    from state.redis_store import RedisFeatureStore

    txns = list(transactions_from_frame(frame))
    client = redis_client(settings)
    namespace = f"bstate{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, namespace, FeatureConfig.from_settings(settings.features), partitions=1)
    rows, offset = [], 0
    try:
        for size in sizes:
            times = []
            for _ in range(max(3, min(30, 4000 // size))):
                chunk = [SourceRecord(0, offset + i, t) for i, t in enumerate(txns[offset % len(txns):][:size])]
                if len(chunk) < size:
                    offset = 0
                    continue
                t0 = time.perf_counter()
                batch = store.prepare_batch(chunk)
                store.commit_batch(batch, [b"x" * 300] * len(chunk))
                times.append(time.perf_counter() - t0)
                offset += size
            median = float(np.median(times))
            rows.append({"batch": size, "ms_per_batch": round(median * 1000, 3),
                         "events_per_s": round(size / median)})
    finally:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for lo in range(0, len(keys), 1000):
            client.unlink(*keys[lo : lo + 1000])
        client.close()
    return rows


def _median_of(fn: Callable[[], Any], repeat: int, budget_s: float = 1.5) -> float:
    """Median wall time of `fn` over up to `repeat` calls (at least 3; stops early when the budget is spent)."""
    times: list[float] = []
    while len(times) < repeat and (len(times) < 3 or sum(times) < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: The MLP's paths in the scoring table, in column order: NumPy (the CPU path), the same forward pass as an ONNX
#: graph on onnxruntime's CPU provider, and on its CUDA provider.
SCORING_PATHS = {"mlp_numpy": "cpu", "mlp_onnx_cpu": "onnx-cpu", "mlp_cuda": "cuda"}


def scoring(registry: Path, sizes: tuple[int, ...] = SCORING_SIZES) -> dict[str, Any]:
    """One model call per batch size, the MLP's paths side by side (SCORING_PATHS), then the stacking ensemble (on the
    CPU everywhere). A path that cannot run here (onnxruntime not installed, no usable CUDA device) is a column of
    its reason. Each ONNX path's scores are compared with NumPy's on the same batch (max_abs_diff). crossover: the
    smallest batch from which CUDA beats NumPy at every larger size measured (streamer.gpu_min_batch), or None."""
    from features.spec import FEATURE_NAMES
    from fraudstream.errors import ModelError
    from models.device import probe_cuda
    from models.registry import ModelRegistry

    bench_registry = ModelRegistry(registry, allow_unsigned=True)
    numpy_model = bench_registry.load(device="cpu")
    models: dict[str, Any] = {"mlp_numpy": numpy_model}
    skipped: dict[str, str] = {}
    cuda = probe_cuda()
    for name, device in SCORING_PATHS.items():
        if device == "cpu":
            continue
        if device == "cuda" and cuda.device_name is None:
            skipped[name] = f"no GPU ({cuda.reason})"
            continue
        try:
            models[name] = bench_registry.load(device=device, gpu_min_batch=1, scorers=("mlp",))
        except ModelError as exc:
            skipped[name] = str(exc)
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(1.0, 1.0, size=(max(sizes), len(FEATURE_NAMES))))
    rows = []
    for size in sizes:
        batch = X[:size]
        row: dict[str, Any] = {"batch": size}
        expected = numpy_model.score(batch, "mlp")
        calls = {name: partial(model.score, batch, "mlp") for name, model in models.items()}
        calls["stack"] = partial(numpy_model.score, batch, "stack")
        for name, call in calls.items():
            out = call()  # warm: onnxruntime allocates its buffers for a new shape on the first run
            if name not in ("mlp_numpy", "stack"):
                row[f"{name}_max_abs_diff"] = float(np.max(np.abs(out - expected)))
            seconds = _median_of(call, 30)
            row[f"{name}_ms"] = round(seconds * 1000, 3)
            row[f"{name}_rows_per_s"] = round(size / seconds)
        rows.append(row)
    return {"device": f"cuda:0 ({cuda.device_name})" if cuda.device_name else "cpu", "skipped": skipped,
            "crossover": gpu_crossover(rows), "rows": rows}


def gpu_crossover(rows: list[dict[str, Any]]) -> int | None:
    """The smallest batch size from which the CUDA path's rows/s beat NumPy's at that size and every larger one."""
    found = None
    for row in sorted(rows, key=lambda r: r["batch"], reverse=True):
        if "mlp_cuda_rows_per_s" not in row or row["mlp_cuda_rows_per_s"] <= row["mlp_numpy_rows_per_s"]:
            break
        found = row["batch"]
    return found


def offline_features(frame: pd.DataFrame) -> dict[str, Any]:
    from features.config import FeatureConfig
    from features.offline import build_features

    t0 = time.perf_counter()
    out = build_features(frame, None, FeatureConfig())
    seconds = time.perf_counter() - t0
    return {"rows": len(out), "seconds": round(seconds, 2), "rows_per_s": round(len(out) / seconds)}


def training(history: pd.DataFrame, registry: Path, models: tuple[str, ...] = TRAIN_MODELS) -> dict[str, Any]:
    """Fit time per model on one prequential fold of small simulated data; publishes the MLP + stack bundle."""
    from features.config import FeatureConfig
    from models.registry import ModelRegistry
    from training.config import training_config
    from training.pipeline import run_training

    cfg = training_config({
        "models": list(models),
        "model_params": {k: v for k, v in TRAIN_PARAMS.items() if k in models},
        "prequential": {"train_days": 14, "delay_days": 7, "test_days": 7, "n_folds": 1},
        # about 1 % of the ~1,200 transactions a day of 600 simulated customers: the share a fraud team reviews
        # (3.4 % before; on the bench's traffic, whose users start with no history, that alerted 15 %)
        "alerts_per_day": 12,
    })
    t0 = time.perf_counter()
    target = ModelRegistry(registry, allow_unsigned=True)
    report = run_training(history, cfg, FeatureConfig(), registry=target, force=True)
    fold = report["folds"][0]
    return {
        "rows": report["rows"], "frauds": report["frauds"], "total_s": round(time.perf_counter() - t0, 1),
        "fit_seconds": {k: round(v, 2) for k, v in fold["fit_seconds"].items()},
        "average_precision": {k: round(v["average_precision"], 3) for k, v in report["mean_metrics"].items()
                              if "average_precision" in v},
        "version": report["version"],
    }


def fold(frame: pd.DataFrame, batch: int = 2000) -> dict[str, Any]:
    """The feature fold per event: the reference Python kernels against the compiled batch fold, on the same events
    (the user side; states carried as the store carries them), and the whole core per event (decode, fold, score,
    outputs) on the in-memory store."""
    from features.config import FeatureConfig
    from features.fields import columns_of, fields_of
    from features.offline import transactions_from_frame
    from features.state import UserState
    from features.transform import fold_kernel, late_kernel, user_kernel
    from features.user_fold import fold_user_batch, user_events

    cfg = FeatureConfig()
    txns = list(transactions_from_frame(frame.iloc[: 4 * batch]))
    warm, events = txns[: 3 * batch], txns[3 * batch :]
    users = sorted({t.user_id for t in txns})
    index = {u: i for i, u in enumerate(users)}
    states = {u: UserState() for u in users}
    for t in warm:
        f = fields_of(t)
        if not late_kernel(states[t.user_id], f.ts, cfg):
            states[t.user_id] = fold_kernel(states[t.user_id], f, cfg)

    def reference() -> None:
        local = dict(states)
        for t in events:
            f = fields_of(t)
            user_kernel(local[t.user_id], f)
            if not late_kernel(local[t.user_id], f.ts, cfg):
                local[t.user_id] = fold_kernel(local[t.user_id], f, cfg)
        for s in local.values():
            s.to_bytes()

    encoded = [states[u].to_bytes() if states[u].n_total else b"" for u in users]

    def compiled() -> None:
        cols = columns_of(events)
        fold_user_batch(encoded, user_events(cols, np.fromiter((index[t.user_id] for t in events), np.int64)), cfg)

    compiled()  # compiled (or loaded from numba's cache) once
    ref_s, fast_s = _best_of(reference, 5), _best_of(compiled, 10)
    return {"batch": len(events), "reference_us_per_event": round(ref_s / len(events) * 1e6, 2),
            "compiled_us_per_event": round(fast_s / len(events) * 1e6, 2), "speedup": round(ref_s / fast_s, 1),
            "core_us_per_event": _core_cost(frame, batch)}


def drift(batch: int = 2000, features: int = 5, bins: int = 10) -> dict[str, Any]:
    """The drift watch's cost per event (streamer/drift.py HourlyDrift.observe + close on one batch of scored events
    from 6 partitions over two hours: the score and `features` feature histograms), against a reference of the
    default shape."""
    from features.spec import FEATURE_NAMES
    from streamer.drift import HOUR_S, HourlyDrift, build_reference

    rng = np.random.default_rng(0)
    names = list(FEATURE_NAMES)
    X = rng.lognormal(0.0, 1.0, size=(20_000, len(names)))
    ref = build_reference({"mlp": rng.uniform(0, 1, 20_000)}, X, names, rng.random(len(names)), features, bins)
    columns = [names.index(f.name) for f in ref.features]
    vectors, scores = X[:batch], rng.uniform(0, 1, batch)
    alerted, parts = scores > 0.99, rng.integers(0, 6, batch)
    ts = np.sort(rng.integers(0, 2 * HOUR_S, batch)) + 1_700_000_000
    rows = np.arange(batch)
    watch = HourlyDrift(ref, "mlp", columns, 0.2, 3600.0)

    def one() -> None:
        watch.observe(ts, scores, alerted, vectors, rows, parts)
        watch.close()

    seconds = _best_of(one, 50)
    return {"batch": batch, "features": len(ref.features), "bins": bins,
            "us_per_event": round(seconds / batch * 1e6, 3), "us_per_batch": round(seconds * 1e6, 1)}


def _core_cost(frame: pd.DataFrame, batch: int, batches: int = 5) -> float:
    """StreamProcessor.process per event (decode, state, fold, score, outputs) on the in-memory store: one batch
    to warm up, then `batches` timed."""
    import tempfile
    import zlib

    from bankbus.encode import transaction_values
    from fraudstream.clock import ManualClock
    from fraudstream.contracts import SCHEMA_VERSION, SCHEMA_VERSION_HEADER
    from fraudstream.settings import build_settings
    from models.registry import ModelRegistry
    from models.tiny import publish_tiny_model
    from state.store import InMemoryFeatureStore
    from streamer.core import RawRecord, StreamProcessor
    from streamer.scoring import ModelHolder

    with tempfile.TemporaryDirectory() as root:
        publish_tiny_model(Path(root))
        model = ModelRegistry(Path(root), allow_unsigned=True).load()
    values = transaction_values(frame.iloc[: (batches + 1) * batch])
    users = frame["user_id"].astype(str).tolist()
    offsets: dict[int, int] = {}
    records = []
    for user, value in zip(users, values, strict=False):
        p = zlib.crc32(user.encode()) % 6
        offsets[p] = offsets.get(p, -1) + 1
        records.append(RawRecord("transactions", p, offsets[p], user.encode(), value,
                                 [(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.encode())]))
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    processor = StreamProcessor(build_settings({"streamer": {"scorer": "stack"}}, environ={}), InMemoryFeatureStore(),
                                ModelHolder.fixed(model), ManualClock(now))
    processor.process(records[:batch])
    t0 = time.process_time()
    for lo in range(batch, len(records), batch):
        processor.process(records[lo : lo + batch])
    return round((time.process_time() - t0) / (len(records) - batch) * 1e6, 1)


def explanations(registry: Path) -> dict[str, Any]:
    """Alert explanations: ms per alert of the scorer's attributions (models/attribution.py) per scorer and alert
    batch, beside the scoring cost of the same rows, and the largest completeness error (bench/explain_cost.py)."""
    from bench.explain_cost import explanation_cost
    from models.registry import ModelRegistry

    return explanation_cost(ModelRegistry(registry, allow_unsigned=True).load(device="cpu"))
