"""The embedded broker's KRaft cluster id never starts with '-' (kafka-storage would read it as an option)."""

from __future__ import annotations

import base64
import doctest

import fraudstream.infra.kafka_embedded as kafka_embedded
from fraudstream.infra.kafka_embedded import new_cluster_id


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    dash_first = bytes([0xFB]) + bytes(range(15))  # encodes to '-w...'
    assert base64.urlsafe_b64encode(dash_first).decode().startswith("-")
    draws = iter([dash_first, dash_first, bytes(range(16))])
    assert new_cluster_id(lambda: next(draws)) == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")


def test_random_ids_are_22_url_safe_characters_of_16_bytes_and_never_an_option() -> None:
    ids = {new_cluster_id() for _ in range(3000)}
    assert len(ids) == 3000
    for cluster in ids:
        assert len(cluster) == 22 and not cluster.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster + "==")) == 16


def test_docstring_example_runs() -> None:
    result = doctest.testmod(kafka_embedded)
    assert result.attempted >= 1 and result.failed == 0
