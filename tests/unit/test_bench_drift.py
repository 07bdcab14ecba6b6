"""The bench's drift stage: it measures the drift watch on a real batch and the report prints it beside the core."""

from __future__ import annotations

from bench.report import markdown
from bench.stages import drift


def test_the_drift_stage_is_measured_and_reported() -> None:
    stage = drift(batch=512, features=3, bins=6)
    assert (stage["batch"], stage["features"], stage["bins"]) == (512, 3, 6)
    assert stage["us_per_batch"] > 0 and abs(stage["us_per_event"] * 512 - stage["us_per_batch"]) < 0.5 * 512
    machine = {"command": "python -m bench", "cpu_model": "x", "cores": 2, "memory_gib": 1.0,
               "load_average_at_start": [1.0], "versions": {"python": "3.11"}}
    fold = {"batch": 2000, "reference_us_per_event": 9.0, "compiled_us_per_event": 1.0, "speedup": 9.0,
            "core_us_per_event": 40.0}
    stages = {"fold": fold, "validation": {"batch": 1, "us_per_event": 1, "events_per_s": 1}, "state": [],
              "scoring": {"device": "cpu", "skipped": {}, "crossover": None, "rows": []},
              "offline_features": {"rows": 1, "seconds": 1, "rows_per_s": 1},
              "drift": {**stage, "us_per_event": 0.4}}
    text = markdown({"machine": machine, "started_at": "now", "took_s": 1.0, "stages": stages})
    assert "Drift watch (streamer/drift.py: score and 3 feature histograms, 6 bins" in text
    assert "0.4 us/event (1.0% of the core's)" in text
