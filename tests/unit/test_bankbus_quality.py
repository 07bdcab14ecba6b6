"""The demo's quality figures against the simulator's truth, and the start-position parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bankbus.quality import Truth, quality
from fraudstream.errors import InputError
from streamer.start_position import parse_start

TRUTH = Truth({"t1": "A", "t2": "A", "t3": "B", "t4": "C", "t5": "C", "t6": "D"}, frozenset({"t1", "t2", "t3", "t6"}))


def test_alerts_per_1000_precision_recall_and_fraud_cards() -> None:
    q = quality(TRUTH, scored=["t1", "t2", "t3", "t4", "t5", "other"], alerted=["t1", "t4", "other", "t6"])
    # t6 alerted but never scored (not counted); "other" is not in the truth
    assert (q.scored, q.alerts, q.true_alerts, q.frauds, q.fraud_cards, q.cards_caught) == (5, 2, 1, 3, 2, 1)
    assert q.alerts_per_1000 == 400.0 and q.precision == 0.5 and q.recall == pytest.approx(1 / 3)
    assert q.line() == ("5 scored, 2 alerts = 400.0 per 1,000 | precision 50.0% (1/2 alerts are fraud) | "
                        "recall 33.3% (1/3 frauds alerted) | fraud cards caught 1/2")
    empty = quality(TRUTH, [], [])
    assert empty.precision is None and empty.recall is None and "precision n/a" in empty.line()


def test_start_positions() -> None:
    assert parse_start("earliest").kind == "earliest" and parse_start("LATEST").kind == "latest"
    at = parse_start("2024-02-10T00:00:00Z")
    assert at.kind == "time" and at.at == datetime(2024, 2, 10, tzinfo=UTC)
    assert parse_start("2024-02-10T01:00:00").at == datetime(2024, 2, 10, 1, tzinfo=UTC)  # naive: UTC
    with pytest.raises(InputError, match="--from 'soon' is not earliest, latest or a time"):
        parse_start("soon")
