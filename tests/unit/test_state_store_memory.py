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


def test_user_key_keeps_raw_user_ids_out_of_key_names() -> None:
    import hashlib

    from state.batch import SourceRecord
    from tests.feature_streams import txn

    store = InMemoryFeatureStore(FeatureConfig(), user_key=lambda u: hashlib.sha256(b"k" + u.encode()).hexdigest()[:20])
    store.commit_batch(store.prepare_batch([SourceRecord(0, 0, txn(user="alice@example.com"))]), [None])
    assert not any("alice" in key for key in store.strings)
    state = store.user_state("alice@example.com")
    assert state is not None and state.n_total == 1
