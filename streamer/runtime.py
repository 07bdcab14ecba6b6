"""Wiring shared by both engines: Redis store (with optional HMAC of user ids), model holder, metrics, processor."""

from __future__ import annotations

import gc
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.jit import warm as warm_kernels
from fraudstream.clock import Clock, SystemClock
from fraudstream.settings import Settings
from state.store import FeatureStore
from streamer.core import StreamProcessor
from streamer.metrics import StreamMetrics
from streamer.scoring import ModelHolder

if TYPE_CHECKING:
    from models.device import CudaProbe, ScoringDevice
    from state.output_seal import OutputSeal

log = logging.getLogger(__name__)


def user_key_for(settings: Settings) -> Callable[[str], str] | None:
    """hmac-sha256(user_id) as hex when streamer.user_id_hmac_key is set, so raw user ids never reach Redis."""
    secret = settings.streamer.user_id_hmac_key
    if secret is None:
        return None
    key = secret.get_secret_value().encode()

    def hashed(user_id: str) -> str:
        return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()

    return hashed


def build_store(settings: Settings, partitions: int | None = None, label_partitions: int | None = None) -> FeatureStore:
    """The Redis feature store of the settings (namespace, feature config, partition counts, HMAC)."""
    from features.config import FeatureConfig
    from state.redis_client import redis_client
    from state.redis_store import RedisFeatureStore

    if partitions is None or label_partitions is None:
        from fraudstream.infra.topics import partition_count

        partitions = partitions or partition_count(settings, settings.topics.transactions)
        label_partitions = label_partitions or partition_count(settings, settings.topics.labels)
    return RedisFeatureStore(
        redis_client(settings),
        settings.redis.namespace,
        FeatureConfig.from_settings(settings.features),
        partitions=partitions,
        label_partitions=label_partitions,
        user_key=user_key_for(settings),
        output_seal=output_seal_for(settings),
    )


def output_seal_for(settings: Settings) -> OutputSeal | None:
    """With the user-id HMAC key set, the cached outputs (which name users) are encrypted too (state/output_seal.py)."""
    from state.output_seal import OutputSeal

    secret = settings.streamer.user_id_hmac_key
    return None if secret is None else OutputSeal(secret.get_secret_value().encode())


def build_holder(settings: Settings, metrics: StreamMetrics | None = None) -> ModelHolder:
    """Load the registry's current model now (ModelError if there is none) and start background reloads.

    Only the parts the configured scorer needs are loaded: scorer mlp imports neither TensorFlow/Keras nor
    scikit-learn/pandas (the stack's unpickling needs scikit-learn). The MLP is scored where streamer.device says
    (scoring_device); ConfigError when cuda is asked for and there is no usable device.
    """
    from models.registry import ModelRegistry

    device = scoring_device(settings)
    registry = ModelRegistry.from_settings(settings)  # signing key and policy: a reload is verified as well
    holder = ModelHolder(
        registry,
        reload_poll_s=settings.streamer.reload_poll_s,
        metrics=metrics,
        device=device.kind,
        gpu_min_batch=settings.streamer.gpu_min_batch,
        scorers=(settings.streamer.scorer,) if settings.streamer.scorer else None,  # unset: the policy's, any part
        # the model's scoring policy with the explicit settings (models/policy.py): a blend weight it was not
        # calibrated for is one line and exit 2 at start; a reloaded version like that is refused, the old one stays
        accept=lambda model: model.serving_policy(settings.streamer.scorer, settings.streamer.blend_mlp_weight),
    )
    return holder.start()


def scoring_device(settings: Settings, probe: Callable[[], CudaProbe] | None = None) -> ScoringDevice:
    """streamer.device resolved against the machine (models/device.py), logged once: "scoring on cuda:0 (NVIDIA H200)"
    or "scoring on cpu" with the reason auto found no GPU."""
    from models.device import probe_cuda, resolve_device

    cfg = settings.streamer
    device = resolve_device(cfg.device, probe or probe_cuda)
    if device.kind == "cpu":
        why = f" (device auto: {device.why_cpu})" if device.why_cpu else ""
        log.info("scoring on cpu%s", why)
        return device
    largest = min(cfg.micro_batch_max_size, cfg.poll_batch_size)
    log.info("scoring on %s: model calls of %d+ rows on the GPU, smaller ones on the CPU (streamer.gpu_min_batch)",
             device.label, cfg.gpu_min_batch)
    if largest < cfg.gpu_min_batch:
        log.warning("model calls are at most %d rows (micro_batch_max_size, poll_batch_size), fewer than "
                    "gpu_min_batch %d: every call stays on the CPU; raise them to use the GPU",
                    largest, cfg.gpu_min_batch)
    return device


@dataclass
class Runtime:
    processor: StreamProcessor
    holder: ModelHolder
    metrics: StreamMetrics
    store: FeatureStore

    def close(self) -> None:
        self.holder.stop()


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: FeatureStore | None = None,
    metrics: StreamMetrics | None = None,
) -> Runtime:
    """Everything an engine needs around the core, built from settings."""
    metrics = metrics or StreamMetrics()
    store = store or build_store(settings)
    holder = build_holder(settings, metrics)
    processor = StreamProcessor(settings, store, holder, clock or SystemClock(), metrics)
    log.info("feature kernels ready in %.1f s", warm_kernels())  # loaded now, so the first batch does not wait
    settle_heap()
    return Runtime(processor, holder, metrics, store)


def settle_heap() -> None:
    """Collect once, then move every object alive now (libraries, the model) out of the garbage collector's view.

    Libraries leave many long-lived objects (TensorFlow and Keras, when the worker still imported them, a few hundred
    thousand); without this every full collection walks them all and stalls a batch (measured then: 8 full
    collections, 1.1 s, in a 40,000-event run). Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()
