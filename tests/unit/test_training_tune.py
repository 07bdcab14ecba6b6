"""`fraudstream tune` on a tiny synthetic history: candidates over the validation folds under the book's protocol,
the pick by mean AP, nothing read after the validation end, tune.json taken by `fraudstream train --config`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig
from fraudstream.errors import ConfigError
from tests.cli_helpers import run_cli
from tests.unit.test_training_pipeline import handbook_style
from training.config import load_training_config, training_config
from training.history import canonical_from_handbook
from training.tune import expand, load_grid, tune, write_result

PROTOCOL = {"prequential": {"train_days": 5, "delay_days": 3, "test_days": 4, "n_folds": 2}}
END = "2018-04-27"  # the history runs 2018-04-01 .. 04-30: the last 3 days are after the validation period


def _history() -> pd.DataFrame:
    history = canonical_from_handbook(handbook_style(days=30, users=60))
    late = history["timestamp"] >= pd.Timestamp(END, tz="UTC")
    history.loc[late, "is_fraud"] = 1  # poison: any candidate that saw these weeks would be judged on them
    return history


def test_tiny_grid_picks_the_best_mean_ap_on_the_validation_weeks_only(tmp_path: Path) -> None:
    grid = {
        "models": {
            "logistic_regression": {"C": [0.01, 1.0]},
            "random_forest": {"n_estimators": [5], "max_depth": [4]},
            "mlp": {"epochs": [2], "batch_size": [128]},
        },
        "blend_weights": [0.5],
    }
    result = tune(_history(), training_config(PROTOCOL), FeatureConfig(), grid, validation_end=END)
    table = result["table"]
    assert len(table) == 4 + 3  # four settings, and the blend of the MLP with each of the three others
    aps = [row["average_precision"]["mean"] for row in table]
    assert aps == sorted(aps, reverse=True) and result["choice"]["candidate"] == table[0]["candidate"]
    assert all(len(row["folds"]) == 2 and row["average_precision"]["std"] >= 0 for row in table)
    sel = result["selection"]
    assert pd.Timestamp(sel["last_row"]) < pd.Timestamp(END, tz="UTC")
    assert [f["name"] for f in sel["folds"]] == ["test 2018-04-19", "test 2018-04-23"]
    # the book's protocol: known compromised cards are out of the assessed rows, so fewer than the whole weeks
    history = _history()
    week = (history["timestamp"] >= pd.Timestamp("2018-04-23", tz="UTC")) & (
        history["timestamp"] < pd.Timestamp(END, tz="UTC")
    )
    assert 0 < sel["folds"][1]["assessed_rows"] < int(week.sum())
    blend = next(row for row in table if row["scorer"] == "blend")
    assert blend["blend_mlp_weight"] == 0.5 and set(blend["params"]) == {"mlp", blend["model"].split("+")[1]}

    json_path, md_path = write_result(result, tmp_path)
    cfg = load_training_config(json_path)  # what `fraudstream train --config tune.json` reads
    choice = result["choice"]
    first = "mlp" if choice["scorer"] == "blend" else choice["model"]
    assert first in cfg.models and "mlp" in cfg.models and len(cfg.models) == 2
    if choice["scorer"] != "blend":
        assert cfg.model_params[choice["model"]] == {**cfg.model_params[choice["model"]], **choice["params"]}
    assert cfg.prequential.n_folds == 2 and cfg.stack_scorer_model in cfg.models
    assert cfg.scorer == choice["scorer"]  # the policy training writes into the manifest
    if choice["scorer"] == "blend":
        assert cfg.blend_mlp_weight == choice["blend_mlp_weight"]
    text = md_path.read_text()
    assert f"**choice: {choice['candidate']}**" in text and text.count("\n| ") == len(table) + 1
    saved = json.loads(json_path.read_text())
    assert saved["streamer_settings"]["FRAUD_STREAMER__SCORER"] == choice["scorer"]


def test_grid_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "grid.yaml"
    bad.write_text("models: {nosuch: {a: [1]}}\n")
    with pytest.raises(ConfigError, match="unknown model 'nosuch'"):
        expand(load_grid(bad))
    bad.write_text("models: {random_forest: {max_depth: 3}}\n")
    with pytest.raises(ConfigError, match="must be a list of values"):
        expand(load_grid(bad))
    bad.write_text("modles: {}\n")
    with pytest.raises(ConfigError, match="needs 'models:'"):
        load_grid(bad)
    assert len(expand(load_grid(None))) == 1 + 2 + 1 + 1  # the default grid: small on purpose


def test_cli_tune_writes_a_config_train_takes(tmp_path: Path) -> None:
    history = tmp_path / "history.parquet"
    handbook_style(days=30, users=60).to_parquet(history)
    grid = tmp_path / "grid.yaml"
    grid.write_text("models:\n  logistic_regression: {C: [0.1, 1.0]}\n")
    base = tmp_path / "base.yaml"
    base.write_text("prequential: {train_days: 5, delay_days: 3, test_days: 4}\n")
    out = tmp_path / "tune"
    result = run_cli(
        "tune",
        "--history",
        str(history),
        "--grid",
        str(grid),
        "--config",
        str(base),
        "--validation-end",
        END,
        "--folds",
        "2",
        "--out",
        str(out),
    )
    assert result.code == 0, result.err
    assert "choice (book protocol, mean AP over 2 validation folds): logistic_regression(C=" in result.out
    cfg = load_training_config(out / "tune.json")
    assert cfg.models == ("logistic_regression",) and cfg.model_params["logistic_regression"]["C"] in (0.1, 1.0)
    assert np.isfinite(json.loads((out / "tune.json").read_text())["table"][0]["average_precision"]["mean"])
    bad = run_cli("tune", "--history", str(history), "--grid", str(tmp_path / "missing.yaml"))
    assert (
        bad.code == 2 and bad.err.strip() == f"fraudstream: error: grid file {tmp_path / 'missing.yaml'} does not exist"
    )
