"""Simulated transaction ids carry a run id: two simulations never share an id, and the contract accepts them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from bankbus.simulator import SimulationConfig, new_run_id, simulate_frame
from fraudstream.contracts import Transaction
from fraudstream.errors import InputError
from tests.cli_helpers import run_cli


def test_two_simulate_runs_with_the_same_seed_share_no_transaction_id(tmp_path: Path) -> None:
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for out in outs:
        result = run_cli("simulate", "--customers", "30", "--days", "1", "--seed", "5", "--out", str(out), timeout=60)
        assert result.code == 0, result.err
    a, b = (pd.read_csv(out) for out in outs)
    assert len(a) == len(b) and a["amount"].tolist() == b["amount"].tolist()  # same seed, same traffic
    assert set(a["transaction_id"]).isdisjoint(b["transaction_id"])
    assert a["transaction_id"].str.fullmatch(r"T[0-9a-z]+-\d{10}").all()
    row = a.iloc[0]
    Transaction.model_validate({"transaction_id": row["transaction_id"], "user_id": row["user_id"],
                                "timestamp": row["timestamp"], "amount": float(row["amount"]),
                                "merchant_id": row["merchant_id"]})


def test_a_chosen_run_id_and_the_bare_form() -> None:
    config = SimulationConfig(customers=20, merchants=20, days=1, start=date(2024, 1, 1), seed=1)
    bare = simulate_frame(config)
    named = simulate_frame(SimulationConfig(customers=20, merchants=20, days=1, start=date(2024, 1, 1), seed=1,
                                            run_id="r1"))
    assert bare["transaction_id"].iloc[0] == "T0000000000"
    assert (named["transaction_id"] == "Tr1-" + bare["transaction_id"].str[1:]).all()
    with pytest.raises(InputError, match="--run-id 'a b'"):
        simulate_frame(SimulationConfig(customers=20, merchants=20, days=1, run_id="a b"))
    assert new_run_id(1_700_000_000_000_000_000) != new_run_id(1_700_000_000_001_000_000)
