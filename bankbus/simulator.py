"""Deterministic transaction simulator: a seed gives the same customers, merchants, traffic and frauds.

`simulate(SimulationConfig(...))` returns the canonical frame (see bankbus.frames) plus the hidden
profiles and the list of fraud events (the answer key behind fraud_scenario).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bankbus import world as w
from bankbus.frames import CANONICAL_COLUMNS, LABEL_COLUMNS
from bankbus.population import DEVICES_PER_CUSTOMER, Rows, World, legit_rows, make_world
from bankbus.scenarios import FraudInjector, FraudRates
from fraudstream.errors import InputError

CURRENCY = "EUR"
RUN_ID_MAX = 32
RUN_ID = re.compile(rf"[A-Za-z0-9-]{{1,{RUN_ID_MAX}}}")


def transaction_prefix(run_id: str) -> str:
    """T for a run without an id (T0000000001), else T<run id>- (Tq8x3k2a-0000000001)."""
    return f"T{run_id}-" if run_id else "T"


def new_run_id(now_ns: int) -> str:
    """A short run id from the clock (base 36 of the time in ms, 8 or 9 characters)."""
    digits, value = "0123456789abcdefghijklmnopqrstuvwxyz", now_ns // 1_000_000
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out or "0"


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 1_000
    merchants: int = 500
    days: int = 30
    start: date = date(2024, 1, 1)
    seed: int = 0
    rates: FraudRates = field(default_factory=FraudRates)
    #: Prefix of every transaction id ("" keeps T0000000001...): a run of its own keeps ids unique across runs
    #: that reuse a seed or a start day (`fraudstream simulate` gives each run a fresh one by default).
    run_id: str = ""

    def check(self) -> None:
        if self.customers < 1 or self.days < 1:
            raise InputError("--customers and --days must be at least 1")
        if self.merchants < len(w.CATEGORIES):
            raise InputError(f"--merchants must be at least {len(w.CATEGORIES)} (one per merchant category)")
        if not date(2000, 1, 1) <= self.start < date(2099, 1, 1):
            raise InputError(f"--start {self.start} is outside the contract's event-time range (2000..2099)")
        if self.run_id and not RUN_ID.fullmatch(self.run_id):
            raise InputError(f"--run-id '{self.run_id}' must be 1 to {RUN_ID_MAX} letters, digits or '-'")


@dataclass
class Simulation:
    transactions: pd.DataFrame  # canonical columns + is_fraud + fraud_scenario, in event-time order
    customers: pd.DataFrame  # user_id, home position, spending profile, daily rate, devices, preferred categories
    merchants: pd.DataFrame  # merchant_id, category, position, country
    events: pd.DataFrame  # scenario, user_id, merchant_id, start, end (fraud events of scenarios 2..5)


def user_ids(count: int) -> list[str]:
    return [f"C{i:07d}" for i in range(count)]


def merchant_ids(count: int) -> list[str]:
    return [f"M{i:07d}" for i in range(count)]


def _strings(table: Sequence[str], codes: np.ndarray) -> pd.Series:
    """table[code] for every code (missing where code < 0), built by Arrow without Python per row."""
    missing = codes < 0
    picked = pa.array(list(table) or [""]).take(pa.array(np.where(missing, 0, codes), mask=missing))
    return pd.Series(picked, dtype="str")


def _serials(prefix: str, count: int, width: int) -> pd.Series:
    digits = pc.utf8_lpad(pa.array(np.arange(count)).cast(pa.string()), width, "0")
    return pd.Series(pc.binary_join_element_wise(prefix, digits, ""), dtype="str")


def _frame(rows: Rows, world: World, run_id: str = "") -> pd.DataFrame:
    order = np.lexsort((rows.user, rows.t))
    rows = rows.take(order)
    n = len(rows)
    devices = [f"D{i:08d}" for i in range(int(rows.device.max(initial=-1)) + 1)]
    data = {
        "transaction_id": _serials(transaction_prefix(run_id), n, 10),
        "user_id": _strings(user_ids(world.customers), rows.user),
        "timestamp": pd.to_datetime(rows.t, unit="s", utc=True).as_unit("ns"),
        "amount": rows.amount.astype(np.float64),
        "currency": _strings([CURRENCY], np.zeros(n, dtype=np.int64)),
        "merchant_id": _strings(merchant_ids(world.merchants), rows.merchant),
        "merchant_category": _strings(w.CATEGORIES, rows.category),
        "channel": _strings(w.CHANNELS, rows.channel),
        "latitude": rows.lat.astype(np.float64),
        "longitude": rows.lon.astype(np.float64),
        "country": _strings(w.COUNTRIES, rows.country),
        "device_id": _strings(devices, rows.device),  # -1: no device
        "is_fraud": (rows.scenario > 0).astype(np.int8),
        "fraud_scenario": rows.scenario.astype(np.int8),
    }
    frame = pd.DataFrame(data)
    return frame[[*CANONICAL_COLUMNS, *LABEL_COLUMNS]]


def _profiles(world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    categories = np.array(w.CATEGORIES, dtype=object)
    customers = pd.DataFrame({
        "user_id": user_ids(world.customers),
        "home_latitude": world.home_lat,
        "home_longitude": world.home_lon,
        "home_country": [w.CITIES[c][3] for c in world.home_city],
        "mean_amount": world.mean_amount,
        "std_amount": world.std_amount,
        "daily_rate": world.daily_rate,
        "devices": [[f"D{c * DEVICES_PER_CUSTOMER + j:08d}" for j in range(k)] for c, k in enumerate(world.n_devices)],
        "preferred_categories": [
            list(categories[p[:k]]) for p, k in zip(world.preferred, world.n_preferred, strict=True)
        ],
    })
    merchants = pd.DataFrame({
        "merchant_id": merchant_ids(world.merchants),
        "category": categories[world.merchant_category],
        "latitude": world.merchant_lat,
        "longitude": world.merchant_lon,
        "country": [w.CITIES[c][3] for c in world.merchant_city],
    })
    return customers, merchants


def simulate(config: SimulationConfig) -> Simulation:
    """Simulate `config.days` days of traffic; the same config (seed included) gives the same result."""
    config.check()
    rng = np.random.default_rng(config.seed)
    world = make_world(config.customers, config.merchants, rng)
    start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
    start_s = int(start.timestamp())
    base = legit_rows(world, config.days, start_s, start.weekday(), rng)
    injector = FraudInjector(base, world, config.days, start_s, rng)
    rows = injector.run(config.rates)
    events = pd.DataFrame(injector.events, columns=["scenario", "user", "merchant", "start", "end"])
    customers, merchants = _profiles(world)
    users, shops = user_ids(world.customers), merchant_ids(world.merchants)
    events_frame = pd.DataFrame({
        "scenario": events["scenario"].astype(np.int8),
        "user_id": [users[u] if u >= 0 else None for u in events["user"]],
        "merchant_id": [shops[m] if m >= 0 else None for m in events["merchant"]],
        "start": pd.to_datetime(events["start"], unit="s", utc=True),
        "end": pd.to_datetime(events["end"], unit="s", utc=True),
    })
    return Simulation(_frame(rows, world, config.run_id), customers, merchants, events_frame)


def simulate_frame(config: SimulationConfig) -> pd.DataFrame:
    """Only the canonical transaction frame."""
    return simulate(config).transactions
