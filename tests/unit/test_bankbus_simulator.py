"""The simulator: determinism, scenario rates and each scenario's signature."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from bankbus import world as w
from bankbus.frames import CANONICAL_COLUMNS, LABEL_COLUMNS, frame_to_transactions
from bankbus.scenarios import FraudRates
from bankbus.simulator import Simulation, SimulationConfig, simulate
from fraudstream.errors import InputError

RATES = FraudRates(
    large_amount=0.01, compromised_terminal=0.002, compromised_card=0.003, card_testing=0.003, account_takeover=0.003
)
CONFIG = SimulationConfig(customers=400, merchants=300, days=40, seed=11, rates=RATES)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(CONFIG)


def of_scenario(df: pd.DataFrame, scenario: int) -> pd.DataFrame:
    return df[df["fraud_scenario"] == scenario]


def test_same_seed_same_frame_and_other_seed_differs(sim: Simulation) -> None:
    again = simulate(CONFIG)
    pd.testing.assert_frame_equal(sim.transactions, again.transactions)
    pd.testing.assert_frame_equal(sim.events, again.events)
    other = simulate(SimulationConfig(customers=400, merchants=300, days=40, seed=12, rates=RATES)).transactions
    assert len(other) != len(sim.transactions) or not other["amount"].equals(sim.transactions["amount"])


def test_frame_is_canonical_and_valid(sim: Simulation) -> None:
    df = sim.transactions
    assert tuple(df.columns) == (*CANONICAL_COLUMNS, *LABEL_COLUMNS)
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].is_monotonic_increasing
    assert df["transaction_id"].is_unique
    assert (df["is_fraud"] == (df["fraud_scenario"] > 0)).all()
    assert set(df["channel"]) <= set(w.CHANNELS)
    sample = df.sample(500, random_state=0)
    assert sum(1 for _ in frame_to_transactions(sample)) == 500  # every row passes the pydantic contract


def test_every_scenario_at_its_configured_rate(sim: Simulation) -> None:
    df = sim.transactions
    injected = len(of_scenario(df, 4)) + len(of_scenario(df, 5))
    assert len(of_scenario(df, 1)) == round(RATES.large_amount * (len(df) - injected))
    expected = RATES.event_counts(CONFIG.customers, CONFIG.merchants, CONFIG.days)
    assert sim.events["scenario"].value_counts().to_dict() == expected
    for scenario in (1, 2, 3, 4, 5):
        assert len(of_scenario(df, scenario)) > 0, f"scenario {scenario} never appears"
    zero = simulate(SimulationConfig(customers=50, merchants=50, days=5, seed=1, rates=FraudRates(0, 0, 0, 0, 0)))
    assert zero.transactions["is_fraud"].sum() == 0


def test_large_amounts_only_in_scenario_1(sim: Simulation) -> None:
    df = sim.transactions
    assert (of_scenario(df, 1)["amount"] > w.LARGE_AMOUNT).all()
    assert (df[df["fraud_scenario"].isin([0, 2])]["amount"] <= w.LARGE_AMOUNT).all()


def test_compromised_terminal_makes_its_window_fraudulent(sim: Simulation) -> None:
    df = sim.transactions
    terminals = sim.events[sim.events["scenario"] == 2]
    covered = pd.Series(False, index=df.index)
    for event in terminals.itertuples():
        window = (df["merchant_id"] == event.merchant_id) & (df["timestamp"] >= event.start) & (
            df["timestamp"] < event.end
        )
        assert (df.loc[window, "is_fraud"] == 1).all()
        assert event.end - event.start == pd.Timedelta(days=28)
        covered |= window
    assert covered[df["fraud_scenario"] == 2].all()


def test_compromised_card_has_a_third_of_its_window_at_five_times(sim: Simulation) -> None:
    df = sim.transactions
    for event in sim.events[sim.events["scenario"] == 3].itertuples():
        assert event.end - event.start == pd.Timedelta(days=14)
        mine = df[(df["user_id"] == event.user_id) & (df["timestamp"] >= event.start) & (df["timestamp"] < event.end)]
        hit = of_scenario(mine, 3)
        assert len(hit) == round(mine["fraud_scenario"].isin([0, 3]).sum() / 3)
        cents = np.round(hit["amount"].to_numpy() * 100).astype(np.int64)
        assert (cents % 5 == 0).all()  # 5 x an amount in whole cents
        assert ((hit["amount"] / 5 >= 0.5) & (hit["amount"] / 5 <= w.LARGE_AMOUNT)).all()
    hit = of_scenario(df, 3)
    legit_median = df[(df["fraud_scenario"] == 0) & df["user_id"].isin(hit["user_id"])].groupby("user_id")["amount"]
    ratio = hit.groupby("user_id")["amount"].median() / legit_median.median()
    assert 2.5 < ratio.median() < 10.0


def _earlier(df: pd.DataFrame, user: str, before: pd.Timestamp) -> pd.DataFrame:
    return df[(df["user_id"] == user) & (df["timestamp"] < before)]


def test_card_testing_bursts_small_amounts_at_new_merchants_within_minutes(sim: Simulation) -> None:
    df = sim.transactions
    for event in sim.events[sim.events["scenario"] == 4].itertuples():
        burst = of_scenario(df[df["user_id"] == event.user_id], 4)
        burst = burst[(burst["timestamp"] >= event.start) & (burst["timestamp"] < event.end)]
        assert 4 <= len(burst) <= 8
        assert burst["timestamp"].max() - burst["timestamp"].min() <= pd.Timedelta(minutes=15)
        assert (burst["amount"] <= 5.0).all()
        assert burst["merchant_id"].is_unique
        seen = set(_earlier(df, event.user_id, event.start)["merchant_id"])
        assert not seen & set(burst["merchant_id"])


def test_account_takeover_signature(sim: Simulation) -> None:
    df = sim.transactions
    for event in sim.events[sim.events["scenario"] == 5].itertuples():
        ato = of_scenario(df[df["user_id"] == event.user_id], 5)
        ato = ato[(ato["timestamp"] >= event.start) & (ato["timestamp"] < event.end)].sort_values("timestamp")
        before = _earlier(df, event.user_id, event.start)
        before = before[before["fraud_scenario"] == 0]
        first, last_legit = ato.iloc[0], before.iloc[-1]
        km = w.haversine_km(last_legit.latitude, last_legit.longitude, first.latitude, first.longitude)
        hours = (first.timestamp - last_legit.timestamp).total_seconds() / 3600
        assert km / hours > w.PLAUSIBLE_SPEED_KMH
        assert not set(ato["device_id"]) & set(before["device_id"].dropna())
        assert not set(ato["merchant_category"]) & set(before["merchant_category"])
        amounts = ato["amount"].to_numpy()
        assert (np.diff(amounts) >= 0).all()
        assert amounts[-1] > w.LARGE_AMOUNT and amounts[-1] >= 3 * before["amount"].mean()


def test_bad_configuration_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="--merchants"):
        simulate(SimulationConfig(merchants=3))
    with pytest.raises(InputError, match="not NAME=RATE"):
        FraudRates.parse("large=0.1")
    with pytest.raises(InputError, match="outside"):
        FraudRates.parse("large_amount=2")


@pytest.mark.slow
def test_a_million_rows_well_under_a_minute() -> None:
    began = time.perf_counter()
    df = simulate(SimulationConfig(customers=5_000, merchants=2_000, days=100, seed=1)).transactions
    elapsed = time.perf_counter() - began
    assert len(df) > 1_000_000
    assert elapsed < 30.0, f"{len(df)} rows took {elapsed:.1f} s"
