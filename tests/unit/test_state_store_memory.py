"""The FeatureStore cases against the in-memory store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from features.config import FeatureConfig
from state.memory import InMemoryFeatureStore
from tests.state_store_cases import *  # noqa: F403


@pytest.fixture
def store_factory() -> Callable[..., InMemoryFeatureStore]:
    shared: dict[str, object] = {}

    def make() -> InMemoryFeatureStore:
        store = InMemoryFeatureStore(FeatureConfig())
        if shared:  # same backing dicts: several workers on one store, as with one Redis
            store.strings, store.hashes = shared["strings"], shared["hashes"]  # type: ignore[assignment]
        else:
            shared.update(strings=store.strings, hashes=store.hashes)
        return store

    return make


@pytest.fixture
def snapshot() -> Callable[[InMemoryFeatureStore], dict[str, object]]:
    def take(store: InMemoryFeatureStore) -> dict[str, object]:
        return {**dict(store.strings), **{k: dict(v) for k, v in store.hashes.items() if v}}

    return take
