"""The handbook's own feature table is an external oracle: zero mismatches on every golden row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.features_oracle import main
from features.config import FeatureConfig
from features.offline import build_features
from tests.feature_streams import fraud_labels, synthetic_stream
from tests.shared_data import handbook_dir


@pytest.mark.handbook
@pytest.mark.slow
def test_handbook_golden_features_match(tmp_path) -> None:  # type: ignore[no-untyped-def]
    shared = handbook_dir().parents[1]
    out = tmp_path / "oracle.json"
    assert main(["--shared", str(shared), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["golden_rows_compared"] == 67_517
    assert report["total_mismatches"] == 0, report["mismatches"]


@pytest.mark.slow
def test_forked_fold_equals_single_process() -> None:
    frame = synthetic_stream(120_000, users=2000, merchants=300, days=40)
    labels = fraud_labels(frame, FeatureConfig().label_delay_s)
    one = build_features(frame, labels, FeatureConfig(), workers=1)
    two = build_features(frame, labels, FeatureConfig(), workers=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
