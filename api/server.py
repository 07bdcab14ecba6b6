"""The scoring service wired from settings: the streamer's Redis store (read through `peek` only) and model holder."""

from __future__ import annotations

import logging
from collections.abc import Callable

from api.scoring import ScoringService
from fraudstream.clock import SystemClock
from fraudstream.settings import Settings
from state.engine import KeyValueFeatureStore

log = logging.getLogger(__name__)


def build_service(settings: Settings) -> tuple[ScoringService, Callable[[], None]]:
    """The service and a function that stops what it started (the model reload thread).

    The store is the streamer's (`streamer.runtime.build_store`: namespace, partition counts read from Kafka,
    HMAC of user ids), so the API reads exactly the keys the stream writes; the model holder is the streamer's
    too (`build_holder`: the registry's current version on streamer.device's device, reloaded when `current` moves).
    """
    from features.jit import warm
    from streamer.runtime import build_holder, build_store

    store = build_store(settings)
    if not isinstance(store, KeyValueFeatureStore):  # pragma: no cover - build_store gives the Redis store
        raise TypeError(f"the scoring API needs a store with a read-only peek, not {type(store).__name__}")
    holder = build_holder(settings)
    log.info("feature kernels ready in %.1f s", warm())
    client = getattr(store, "client", None)
    ping = client.ping if client is not None else None
    return ScoringService(settings, store, holder, SystemClock(), ping=ping), holder.stop
