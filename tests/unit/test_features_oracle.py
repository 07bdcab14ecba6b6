"""The handbook's own feature table is an external oracle: zero mismatches on every golden row."""

from __future__ import annotations

import json

import pytest

from bench.features_oracle import main
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
