"""Cached outputs sealed with AES-GCM (state/output_seal.py): round trip, no plaintext, bound to key and offset."""

from __future__ import annotations

import pytest

from fraudstream.errors import StateStoreError
from state.output_seal import NONCE_BYTES, OutputSeal

OUT = b'{"transaction_id":"T1","user_id":"C0000001","score":0.93}'


def test_round_trip_without_plaintext_and_fresh_nonces() -> None:
    seal = OutputSeal(b"k" * 32)
    sealed = seal.seal_all("fs:v1:{t0}:out", {5: OUT, 6: OUT})
    assert all(b"C0000001" not in v and len(v) == len(OUT) + NONCE_BYTES + 16 for v in sealed.values())
    assert sealed[5] != sealed[6]  # same bytes, different nonces
    assert seal.open("fs:v1:{t0}:out", 5, sealed[5]) == OUT == seal.open("fs:v1:{t0}:out", 6, sealed[6])


def test_a_value_moved_to_another_offset_or_opened_with_another_key_is_refused() -> None:
    seal = OutputSeal(b"k" * 32)
    blob = seal.seal_all("fs:v1:{t0}:out", {5: OUT})[5]
    with pytest.raises(StateStoreError, match="does not open"):
        seal.open("fs:v1:{t0}:out", 6, blob)
    with pytest.raises(StateStoreError, match="does not open"):
        seal.open("fs:v1:{t1}:out", 5, blob)
    with pytest.raises(StateStoreError, match="same key"):
        OutputSeal(b"other key").open("fs:v1:{t0}:out", 5, blob)
