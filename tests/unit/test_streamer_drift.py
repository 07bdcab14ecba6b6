"""Drift: PSI against a hand computation, quantile bins, hourly closing by event time, verdict precision, the stream
core's drift records and metrics, the reference in a signed registry manifest (and versions without one)."""

from __future__ import annotations

import doctest
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streamer.drift
from fraudstream.clock import ManualClock
from fraudstream.contracts import Label, LabelSource
from fraudstream.settings import build_settings
from models.registry import ModelRegistry
from state.store import InMemoryFeatureStore
from streamer.core import RawRecord, StreamProcessor
from streamer.drift import HOUR_S, PSI_FLOOR, BinnedReference, DriftReference, HourlyDrift, build_reference, psi
from streamer.metrics import StreamMetrics
from streamer.outputs import contract_headers
from streamer.scoring import ModelHolder
from tests.drift_support import hourly_frame, publish_watched_tiny_model, transactions_of
from tests.streamer_support import publish_tiny_model, txn_headers


def hand_psi(expected: list[float], counts: list[int]) -> float:
    """PSI written out term by term, in plain Python."""
    total = sum(counts)
    out = 0.0
    for e, c in zip(expected, counts, strict=True):
        a, e = max(c / total, PSI_FLOOR), max(e, PSI_FLOOR)
        out += (a - e) * math.log(a / e)
    return out


def test_the_module_examples_run() -> None:
    result = doctest.testmod(streamer.drift)
    assert result.attempted >= 10 and result.failed == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psi_matches_a_hand_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = rng.dirichlet(np.ones(8)).tolist()
    counts = rng.integers(0, 50, 8).tolist()
    counts[3] = 0  # an empty bin: floored, not infinite
    assert psi(expected, counts) == pytest.approx(hand_psi(expected, counts), rel=1e-12)
    assert psi(expected, [round(e * 1e6) for e in expected]) == pytest.approx(0.0, abs=1e-9)


def test_psi_of_two_bins_by_hand() -> None:
    # 0.4 ln 1.8 + 0.4 ln 5
    assert psi([0.5, 0.5], [90, 10]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5.0))
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


def test_reference_bins_are_training_quantiles_with_a_bin_for_missing_values() -> None:
    values = np.concatenate([np.arange(1000.0), [np.nan, np.inf]])
    ref = BinnedReference.fit("x", values, bins=10)
    assert ref.edges.tolist() == [100.0 * k for k in range(1, 10)]
    assert ref.n_bins == 11 and ref.expected.sum() == pytest.approx(1.0)
    assert ref.expected[-1] == pytest.approx(2 / 1002)  # the non-finite values
    np.testing.assert_allclose(ref.expected[:-1], 100 / 1002)
    # a value equal to an edge goes above it, like np.digitize's right=False
    assert ref.bins(np.array([ref.edges[0], ref.edges[0] - 1e-9, np.nan])).tolist() == [1, 0, 10]
    ties = BinnedReference.fit("flag", np.array([0.0] * 70 + [1.0] * 30), bins=10)
    assert ties.edges.tolist() == [1.0] and ties.expected.tolist() == [0.7, 0.3, 0.0]
    again = BinnedReference.from_manifest(json.loads(json.dumps(ref.as_manifest())))
    np.testing.assert_array_equal(again.edges, ref.edges)


def test_top_features_are_those_of_largest_importance() -> None:
    X = np.random.default_rng(0).normal(size=(200, 4))
    ref = build_reference({"mlp": np.linspace(0, 1, 200)}, X, ["a", "b", "c", "d"], np.array([0.1, 0.4, 0.2, 0.3]), 2)
    assert [f.name for f in ref.features] == ["b", "d"]
    assert DriftReference.from_manifest(json.loads(json.dumps(ref.as_manifest()))).rows == 200


def _watch(close_after_s: float = 600.0, threshold: float = 0.2, min_events: int = 1) -> HourlyDrift:
    rng = np.random.default_rng(3)
    ref = build_reference({"mlp": rng.uniform(0, 1, 5000)}, rng.normal(size=(5000, 1)), ["f"], np.ones(1), 1, 5)
    return HourlyDrift(ref, "mlp", [1], threshold, close_after_s, min_events)


def test_hours_close_by_event_time_with_counts_equal_to_a_per_hour_histogram() -> None:
    watch = _watch()
    rng = np.random.default_rng(4)
    ts = np.sort(rng.integers(0, 3 * HOUR_S, 3000))
    scores, alerted = rng.uniform(0, 1, 3000), rng.random(3000) < 0.1
    vectors = np.column_stack([np.zeros(3000), rng.normal(size=3000)])
    records = []
    for lo in range(0, 3000, 256):  # in batches that straddle the hours
        watch.observe(ts[lo : lo + 256], scores[lo : lo + 256], alerted[lo : lo + 256], vectors[lo : lo + 256])
        records += watch.close()
    last = int(ts.max())
    # hour 0 closed once an event past 1 h + 600 s came; hour 1 only if the stream got past 2 h + 600 s
    assert [r["hour_start_unix"] for r in records] == [0, HOUR_S] if last >= 2 * HOUR_S + 600 else [0]
    for record in records:
        h = record["hour_start_unix"]
        inside = (ts >= h) & (ts < h + HOUR_S)
        assert record["events"] == int(inside.sum()) and record["alerts"] == int(alerted[inside].sum())
        ref = watch.reference.scores["mlp"]
        by_hand = np.histogram(scores[inside], bins=np.concatenate([[-np.inf], ref.edges, [np.inf]]))[0]
        # np.histogram's bins are [a, b): the same as searchsorted side=right over the inner edges
        assert record["psi_score"] == pytest.approx(hand_psi(ref.expected.tolist(), [*by_hand.tolist(), 0]), abs=1e-6)
        fref = watch.reference.features[0]
        f_hand = np.histogram(vectors[inside, 1], bins=np.concatenate([[-np.inf], fref.edges, [np.inf]]))[0]
        assert record["psi_features"]["f"] == pytest.approx(hand_psi(fref.expected.tolist(), [*f_hand, 0]), abs=1e-6)
        assert record["retrain"] is False, record  # the same distributions as the reference
    assert all(h >= records[-1]["hour_start_unix"] + HOUR_S for h in watch.hours)
    assert watch.close(every=True) and not watch.hours


def test_a_shifted_hour_asks_for_retraining_only_with_enough_events() -> None:
    rng = np.random.default_rng(5)
    for min_events, expect in ((100, True), (10_000, False)):
        watch = _watch(close_after_s=0, min_events=min_events)
        shifted = rng.uniform(0.8, 1.0, 500)  # every score in the top fifth
        watch.observe(np.full(500, 10), shifted, np.zeros(500, bool), np.zeros((500, 2)))
        watch.observe(np.array([HOUR_S]), np.array([0.5]), np.array([False]), np.zeros((1, 2)))
        (record,) = watch.close()
        assert record["psi_score"] > 1.0 and "score" in record["crossed"]
        assert record["retrain"] is expect


def test_the_slowest_partition_holds_the_hours_open_and_a_closed_hour_is_never_reopened() -> None:
    watch = _watch(close_after_s=0)
    one = (np.array([False]), np.zeros((1, 2)))
    watch.observe(np.array([10, 2 * HOUR_S + 10]), np.array([0.5, 0.5]), np.array([False, False]), np.zeros((2, 2)),
                  partitions=np.array([0, 1]))  # fmt: skip
    assert watch.close() == []  # partition 0 is still in hour 0
    watch.observe(np.array([HOUR_S + 20]), np.array([0.5]), *one, partitions=np.array([0]))
    assert [r["hour_start_unix"] for r in watch.close()] == [0]
    watch.observe(np.array([30, 2 * HOUR_S + 40]), np.array([0.5, 0.5]), np.array([False, False]), np.zeros((2, 2)),
                  partitions=np.array([1, 0]))  # fmt: skip
    (second,) = watch.close()
    assert (second["hour_start_unix"], second["events"], second["after_close"]) == (HOUR_S, 1, 1)
    assert sorted(watch.hours) == [2 * HOUR_S]


def test_verdicts_count_in_the_hour_the_stream_is_in() -> None:
    watch = _watch(close_after_s=0)
    watch.observe(np.array([100, 200]), np.array([0.9, 0.1]), np.array([True, False]), np.zeros((2, 2)))
    watch.observe_verdicts(np.array([True, False, True]), np.array([50.0, 60.0, 70.0]))
    watch.observe(np.array([HOUR_S + 5]), np.array([0.1]), np.array([False]), np.zeros((1, 2)))
    watch.observe_verdicts(np.array([False]), np.array([80.0]))  # arrives once the stream is in hour 1
    (first,) = watch.close()
    assert (first["verdicts"], first["verdicts_fraud"], first["precision"]) == (3, 2, pytest.approx(2 / 3))
    assert first["alert_rate"] == 0.5
    watch.observe(np.array([3 * HOUR_S]), np.array([0.1]), np.array([False]), np.zeros((1, 2)))
    second = watch.close()[0]
    assert (second["verdicts"], second["precision"]) == (1, 0.0)


# ---------------------------------------------------------------- the stream core


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    root = tmp_path_factory.mktemp("registry")
    version, reference = publish_watched_tiny_model(root)
    return ModelRegistry(root, allow_unsigned=True).load(version), reference


def _records(frame: Any) -> list[RawRecord]:
    return [RawRecord("transactions", 0, i, t.user_id.encode(), t.model_dump_json().encode(), txn_headers())
            for i, t in enumerate(transactions_of(frame))]  # fmt: skip


def _run(
    model: Any, records: list[RawRecord], batch: int = 500, **drift: Any
) -> tuple[list[dict[str, Any]], StreamMetrics]:
    settings = build_settings({"streamer": {"scorer": "stack"}, "drift": {"min_hour_events": 100, **drift}},
                              environ={})  # fmt: skip
    metrics = StreamMetrics()
    core = StreamProcessor(settings, InMemoryFeatureStore(), ModelHolder.fixed(model),
                           ManualClock(datetime(2024, 3, 2, tzinfo=UTC)), metrics)  # fmt: skip
    out = []
    for lo in range(0, len(records), batch):
        result = core.process(records[lo : lo + batch])
        out += [json.loads(m.value) for m in result.messages if m.topic == settings.topics.drift]
    return out, metrics


def test_the_core_writes_one_drift_record_per_closed_hour_and_a_shift_asks_for_retraining(
    watched: tuple[Any, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    model, _ = watched
    with caplog.at_level(logging.WARNING, logger="streamer.drift_watch"):
        records, metrics = _run(model, _records(hourly_frame(7, shift_from_hour=8)))
    # 12 hours of events, a grace period of 1 h: hours 0..9 close
    assert [r["hour"][11:16] for r in records] == [f"{h:02d}:00" for h in range(10)]
    assert all(r["model_version"] == model.version and r["scorer"] == "stack" for r in records)
    steady, shifted = records[2:8], records[8:]  # hours 0-1: the features' windows are still filling
    assert all(not r["retrain"] and r["psi_features"]["amount"] < 0.1 for r in steady), steady
    assert all(r["retrain"] and {"score", "amount"} <= set(r["crossed"]) for r in shifted), shifted
    assert min(r["alert_rate"] for r in shifted) > 2 * max(r["alert_rate"] for r in steady)
    assert all("fraudstream train --from-topics --start" in r["retrain_command"] for r in shifted)
    warnings = [r.getMessage() for r in caplog.records if "drift: hour" in r.getMessage()]
    assert sum("2024-03-01T08:00" in w for w in warnings) == 1 and len(warnings) == sum(r["retrain"] for r in records)
    text = metrics.exposition().decode()
    assert 'fraudstream_drift_psi{kind="feature",name="amount"}' in text and "fraudstream_drift_watched 1.0" in text
    assert f"fraudstream_drift_hours_total {len(records)}.0" in text


def test_analyst_verdicts_give_the_hour_its_precision(watched: tuple[Any, dict[str, Any]]) -> None:
    model, _ = watched
    records = _records(hourly_frame(7))[:2000]  # hours 0-4
    at = datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    verdicts = [Label(transaction_id=f"tx{i}", user_id="user1", is_fraud=i < 3, source=source, labelled_at=at)
                for i, source in enumerate([LabelSource.analyst] * 4 + [LabelSource.chargeback])]  # fmt: skip
    labels = [RawRecord("labels", 0, i, b"user1", v.model_dump_json().encode(), contract_headers("label"))
              for i, v in enumerate(verdicts)]  # fmt: skip
    middle = next(i for i, r in enumerate(records) if b"T02:3" in (r.value or b""))
    out, _ = _run(model, [*records[:middle], *labels, *records[middle:]], batch=40)  # a batch: ~6 min
    by_hour = {r["hour"][11:13]: r for r in out}
    assert by_hour["02"]["verdicts"] == 4 and by_hour["02"]["precision"] == 0.75  # the chargeback does not count
    assert by_hour["01"]["precision"] is None


def test_a_version_without_a_reference_is_not_watched_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = ModelRegistry(tmp_path, allow_unsigned=True).load(publish_tiny_model(tmp_path))
    assert "drift_reference" not in model.manifest
    with caplog.at_level(logging.INFO, logger="streamer.drift_watch"):
        records, metrics = _run(model, _records(hourly_frame(7)))
    assert records == []
    assert [r.getMessage() for r in caplog.records].count(
        f"model version {model.version} has no drift reference (trained before drift was watched): drift is not "
        "watched until a model trained with this code is served") == 1  # fmt: skip
    assert "fraudstream_drift_watched 0.0" in metrics.exposition().decode()


def test_the_reference_is_signed_with_the_manifest(tmp_path: Path, watched: tuple[Any, dict[str, Any]]) -> None:
    from fraudstream.errors import ArtifactIntegrityError

    key = "k" * 32
    version, reference = publish_watched_tiny_model(tmp_path, signing_key=key)
    registry = ModelRegistry.from_settings(build_settings({"registry": {"signing_key": key}}, environ={}), tmp_path)
    assert registry.load(version).manifest["drift_reference"] == reference
    manifest = tmp_path / "versions" / version / "manifest.json"
    data = json.loads(manifest.read_text())
    data["drift_reference"]["scores"]["stack"]["proportions"][0] += 0.5
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True))
    with pytest.raises(ArtifactIntegrityError):
        registry.load(version)
