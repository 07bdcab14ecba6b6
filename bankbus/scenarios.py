"""Fraud scenarios injected into simulated legitimate traffic; each labels its rows with its scenario id.

1 large amount, 2 compromised terminal (28 days), 3 compromised card (x5 amounts on a third of its
transactions for 14 days), 4 card testing (bursts of small amounts at new merchants within minutes),
5 account takeover (impossible travel, new device, new categories, then high amounts).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bankbus import world as w
from bankbus.population import DEVICES_PER_CUSTOMER, Rows, World
from fraudstream.errors import InputError

LARGE_AMOUNT, COMPROMISED_TERMINAL, COMPROMISED_CARD, CARD_TESTING, ACCOUNT_TAKEOVER = 1, 2, 3, 4, 5
TERMINAL_DAYS, CARD_DAYS = 28, 14
CARD_AMOUNT_FACTOR = 5.0
REMOTE_COUNTRY = np.array([w.COUNTRIES.index(c[3]) for c in w.REMOTE_CITIES])


@dataclass(frozen=True)
class FraudRates:
    """How much of each scenario: rows for large amounts, events per entity-day for the others."""

    large_amount: float = 0.002  # share of legitimate transactions
    compromised_terminal: float = 0.0002  # per merchant per day (the handbook: 2 of 10,000 a day)
    compromised_card: float = 0.0002  # per customer per day (the handbook: 1 of 5,000 a day)
    card_testing: float = 0.0002  # per customer per day
    account_takeover: float = 0.0001  # per customer per day

    @classmethod
    def parse(cls, text: str) -> FraudRates:
        """From 'large_amount=0.01,card_testing=0.001' (names not given keep their defaults)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition("=")
            if not sep or name.strip() not in known:
                names = ", ".join(sorted(known))
                raise InputError(f"--fraud-rates: '{item}' is not NAME=RATE with NAME one of {names}")
            try:
                values[name.strip()] = float(raw)
            except ValueError:
                raise InputError(f"--fraud-rates: '{raw}' is not a number (in '{item}')") from None
        rates = cls(**values)
        for name in known:
            value = getattr(rates, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"--fraud-rates: {name}={value} is outside [0, 1]")
        return rates

    def event_counts(self, customers: int, merchants: int, days: int) -> dict[int, int]:
        """Events per scenario (2..5) for a population and period."""
        return {
            COMPROMISED_TERMINAL: round(self.compromised_terminal * merchants * days),
            COMPROMISED_CARD: round(self.compromised_card * customers * days),
            CARD_TESTING: round(self.card_testing * customers * days),
            ACCOUNT_TAKEOVER: round(self.account_takeover * customers * days),
        }


@dataclass
class _Index:
    """Row numbers grouped by a key (user or merchant) for fast per-entity look-ups."""

    order: np.ndarray
    sorted_keys: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> _Index:
        order = np.argsort(keys, kind="stable")
        return cls(order, keys[order])

    def rows(self, key: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted_keys, [key, key + 1])
        return self.order[lo:hi]


class FraudInjector:
    """Applies the scenarios to legitimate rows; `events` lists (scenario, user, merchant, start_s, end_s)."""

    def __init__(self, base: Rows, world: World, days: int, start_s: int, rng: np.random.Generator) -> None:
        self.base, self.world, self.days, self.start_s, self.rng = base, world, days, start_s, rng
        self.end_s = start_s + days * 86_400
        self.by_user = _Index.of(base.user)
        self.added: list[Rows] = []
        self.events: list[tuple[int, int, int, int, int]] = []
        self.next_device = world.customers * DEVICES_PER_CUSTOMER
        self.cat_index = _Index.of(world.merchant_category)

    def run(self, rates: FraudRates) -> Rows:
        counts = rates.event_counts(self.world.customers, self.world.merchants, self.days)
        self.large_amounts(rates.large_amount)
        self.compromised_terminals(counts[COMPROMISED_TERMINAL])
        self.compromised_cards(counts[COMPROMISED_CARD])
        users = self._users_with_history(counts[CARD_TESTING] + counts[ACCOUNT_TAKEOVER])
        for user in users[: counts[CARD_TESTING]]:
            self.card_testing(int(user))
        for user in users[counts[CARD_TESTING]:]:
            self.account_takeover(int(user))
        return Rows.concat([self.base, *self.added])

    def large_amounts(self, share: float) -> None:
        rows = self.rng.choice(len(self.base), round(share * len(self.base)), replace=False)
        self.base.amount[rows] = np.round(self.rng.uniform(w.LARGE_AMOUNT + 0.01, 5 * w.LARGE_AMOUNT, len(rows)), 2)
        self.base.scenario[rows] = LARGE_AMOUNT

    def compromised_terminals(self, count: int) -> None:
        in_person = np.flatnonzero(~w.ONLINE_ONLY[self.world.merchant_category])
        merchants = self.rng.choice(in_person, count, replace=count > len(in_person))
        by_merchant = _Index.of(self.base.merchant)
        for merchant in merchants:
            start = self.start_s + int(self.rng.integers(0, self.days)) * 86_400
            end = start + TERMINAL_DAYS * 86_400
            rows = by_merchant.rows(int(merchant))
            hit = rows[(self.base.t[rows] >= start) & (self.base.t[rows] < end) & (self.base.scenario[rows] == 0)]
            self.base.scenario[hit] = COMPROMISED_TERMINAL
            self.events.append((COMPROMISED_TERMINAL, -1, int(merchant), start, end))

    def compromised_cards(self, count: int) -> None:
        users = self.rng.choice(self.world.customers, count, replace=count > self.world.customers)
        for user in users:
            start = self.start_s + int(self.rng.integers(0, self.days)) * 86_400
            end = start + CARD_DAYS * 86_400
            rows = self.by_user.rows(int(user))
            open_rows = rows[(self.base.t[rows] >= start) & (self.base.t[rows] < end) & (self.base.scenario[rows] == 0)]
            hit = self.rng.choice(open_rows, round(len(open_rows) / 3), replace=False)
            self.base.amount[hit] = np.round(self.base.amount[hit] * CARD_AMOUNT_FACTOR, 2)
            self.base.scenario[hit] = COMPROMISED_CARD
            self.events.append((COMPROMISED_CARD, int(user), -1, start, end))

    def _users_with_history(self, count: int) -> np.ndarray:
        active = np.unique(self.base.user)
        if count and not len(active):
            raise InputError("the simulation has no transactions to attack; give more customers or days")
        return self.rng.choice(active, count, replace=count > len(active)) if count else active[:0]

    def _history(self, user: int) -> tuple[set[int], set[int]]:
        """Merchants and categories the user has used so far (legitimate and injected)."""
        rows = self.by_user.rows(user)
        merchants, categories = set(self.base.merchant[rows].tolist()), set(self.base.category[rows].tolist())
        for part in self.added:
            mine = part.user == user
            merchants.update(part.merchant[mine].tolist())
            categories.update(part.category[mine].tolist())
        return merchants, categories

    def _remote_rows(self, user: int, t: np.ndarray, merchant: np.ndarray, amount: np.ndarray, scenario: int) -> Rows:
        n = len(t)
        city = int(self.rng.integers(0, len(w.REMOTE_CITIES)))
        lat = w.REMOTE_CITIES[city][1] + self.rng.normal(0.0, 0.02)
        lon = w.REMOTE_CITIES[city][2] + self.rng.normal(0.0, 0.02)
        device = self.next_device
        self.next_device += 1
        return Rows(
            user=np.full(n, user), merchant=merchant, t=t.astype(np.int64), amount=np.round(amount, 2),
            category=self.world.merchant_category[merchant], channel=np.full(n, w.CHANNELS.index("online")),
            lat=np.full(n, round(lat, 5)), lon=np.full(n, round(lon, 5)), country=np.full(n, REMOTE_COUNTRY[city]),
            device=np.full(n, device), scenario=np.full(n, scenario, dtype=np.int8),
        )

    def card_testing(self, user: int) -> None:
        used, _ = self._history(user)
        pool = np.concatenate([self.cat_index.rows(int(c)) for c in w.CARD_TESTING_CATEGORIES])
        fresh = np.setdiff1d(pool, np.fromiter(used, dtype=np.int64, count=len(used)))
        size = min(int(self.rng.integers(4, 9)), len(fresh))
        start = int(self.rng.integers(self.start_s, self.end_s - 3_600))
        t = start + np.concatenate([[0], np.cumsum(self.rng.integers(5, 90, max(size - 1, 0)))])[:size]
        merchants = self.rng.choice(fresh, size, replace=False)
        self.added.append(self._remote_rows(user, t, merchants, self.rng.uniform(0.5, 5.0, size), CARD_TESTING))
        self.events.append((CARD_TESTING, user, -1, start, int(t[-1]) + 1 if size else start))

    def account_takeover(self, user: int) -> None:
        rows = self.by_user.rows(user)
        legit = rows[(self.base.t[rows] < self.end_s - 6 * 3_600) & (self.base.scenario[rows] == 0)]
        rows = legit if len(legit) else rows  # the jump is measured from a legitimate use of the card
        anchor = int(self.base.t[self.rng.choice(rows)])
        size = int(self.rng.integers(3, 7))
        start = anchor + int(self.rng.integers(600, 3_600))
        t = start + np.concatenate([[0], np.cumsum(self.rng.integers(120, 1_800, size - 1))])
        _, used_categories = self._history(user)
        new_categories = np.setdiff1d(np.arange(len(w.CATEGORIES)), list(used_categories))
        if not len(new_categories):
            new_categories = np.arange(len(w.CATEGORIES))
        categories = self.rng.choice(new_categories, size)
        merchants = np.array([self.rng.choice(self.cat_index.rows(int(c))) for c in categories])
        mean = float(self.world.mean_amount[user])
        high = size // 2 + 1  # the last rows: high amounts after small probes
        probes = self.rng.uniform(0.5, 1.5, size - high) * mean
        floor = w.LARGE_AMOUNT + self.rng.uniform(30, 400, high)
        cash_out = np.maximum(self.rng.uniform(5.0, 15.0, high) * mean, floor)
        amounts = np.concatenate([np.sort(probes), np.sort(cash_out)])
        self.added.append(self._remote_rows(user, t, merchants, amounts, ACCOUNT_TAKEOVER))
        self.events.append((ACCOUNT_TAKEOVER, user, -1, start, int(t[-1]) + 1))
