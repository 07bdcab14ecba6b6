"""Simulated customers, merchants and their legitimate transactions, vectorised with NumPy."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bankbus import world as w

DEVICES_PER_CUSTOMER = 4  # device codes c*4 .. c*4+3 belong to customer c; fraud devices come after
MAX_PREFERRED = 5


@dataclass
class World:
    """Customer and merchant profiles as parallel arrays (index = customer or merchant number)."""

    home_city: np.ndarray
    home_lat: np.ndarray
    home_lon: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    daily_rate: np.ndarray
    n_devices: np.ndarray
    preferred: np.ndarray  # (customers, MAX_PREFERRED) category codes; the first n_preferred are used
    n_preferred: np.ndarray
    merchant_category: np.ndarray
    merchant_city: np.ndarray
    merchant_lat: np.ndarray
    merchant_lon: np.ndarray

    @property
    def customers(self) -> int:
        return len(self.home_city)

    @property
    def merchants(self) -> int:
        return len(self.merchant_category)


@dataclass
class Rows:
    """Transactions as parallel arrays of codes; strings are made once, at the end."""

    user: np.ndarray
    merchant: np.ndarray
    t: np.ndarray  # int64 seconds since the epoch, UTC
    amount: np.ndarray
    category: np.ndarray
    channel: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray  # code into world.COUNTRIES
    device: np.ndarray  # device code, -1 for none
    scenario: np.ndarray  # int8, 0 = legitimate

    def __len__(self) -> int:
        return len(self.user)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)})

    def take(self, index: np.ndarray) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[index] for f in fields(Rows)})


CITY_COUNTRY = np.array([w.COUNTRIES.index(c[3]) for c in w.CITIES])


def make_world(customers: int, merchants: int, rng: np.random.Generator) -> World:
    n_cat = len(w.CATEGORIES)
    home_city = rng.integers(0, len(w.CITIES), customers)
    city_lat = np.array([c[1] for c in w.CITIES])
    city_lon = np.array([c[2] for c in w.CITIES])
    mean_amount = rng.uniform(5.0, 100.0, customers)
    # Each customer prefers 3 to 5 categories: the first k of a random permutation.
    permutation = np.argsort(rng.random((customers, n_cat)), axis=1)[:, :MAX_PREFERRED]
    merchant_city = rng.integers(0, len(w.CITIES), merchants)
    return World(
        home_city=home_city,
        home_lat=city_lat[home_city] + rng.normal(0.0, 0.05, customers),
        home_lon=city_lon[home_city] + rng.normal(0.0, 0.05, customers),
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        daily_rate=rng.uniform(0.0, 4.0, customers),
        n_devices=rng.integers(1, DEVICES_PER_CUSTOMER, customers),
        preferred=permutation,
        n_preferred=rng.integers(3, MAX_PREFERRED + 1, customers),
        merchant_category=np.arange(merchants) % n_cat,  # every category has merchants
        merchant_city=merchant_city,
        merchant_lat=city_lat[merchant_city] + rng.normal(0.0, 0.05, merchants),
        merchant_lon=city_lon[merchant_city] + rng.normal(0.0, 0.05, merchants),
    )


def _pick_merchants(world: World, city: np.ndarray, category: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A merchant of the category in the customer's city (any city for online-only categories or empty pools)."""
    n_cat = len(w.CATEGORIES)
    local_key = world.merchant_city * n_cat + world.merchant_category
    local_order = np.argsort(local_key, kind="stable")
    wanted = city * n_cat + category
    lo = np.searchsorted(local_key[local_order], wanted, "left")
    hi = np.searchsorted(local_key[local_order], wanted, "right")
    cat_order = np.argsort(world.merchant_category, kind="stable")
    glo = np.searchsorted(world.merchant_category[cat_order], category, "left")
    ghi = np.searchsorted(world.merchant_category[cat_order], category, "right")
    use_global = w.ONLINE_ONLY[category] | (hi == lo)
    local = local_order[np.minimum(lo + (u * (hi - lo)).astype(np.int64), len(local_order) - 1)]
    anywhere = cat_order[glo + (u * (ghi - glo)).astype(np.int64)]
    picked: np.ndarray = np.where(use_global, anywhere, local)
    return picked


def legit_rows(world: World, days: int, start_s: int, first_weekday: int, rng: np.random.Generator) -> Rows:
    """Every customer's legitimate transactions over `days` days from `start_s` (epoch seconds, midnight UTC)."""
    weekday = (first_weekday + np.arange(days)) % 7
    counts = rng.poisson(world.daily_rate[:, None] * w.WEEKDAY_FACTOR[weekday][None, :])
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    user, day = cell // days, cell % days
    n = len(user)
    hour = rng.choice(24, size=n, p=w.HOUR_PROBABILITIES)
    t = start_s + day.astype(np.int64) * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)
    slot = (rng.random(n) * world.n_preferred[user]).astype(np.int64)
    category = world.preferred[user, slot]
    merchant = _pick_merchants(world, world.home_city[user], category, rng.random(n))
    category = world.merchant_category[merchant]
    channel = (rng.random(n)[:, None] < w.CHANNEL_CUMULATIVE[category]).argmax(axis=1)

    scale = w.CATEGORY_SCALE[category]
    mean, std = world.mean_amount[user] * scale, world.std_amount[user] * scale
    amount = rng.normal(mean, std)
    bad = (amount < 0.5) | (amount > w.LARGE_AMOUNT)
    amount[bad] = rng.uniform(0.5, np.minimum(2.0 * mean[bad], w.LARGE_AMOUNT))
    amount = np.round(amount, 2)

    in_person = np.isin(channel, list(w.IN_PERSON_CHANNELS))
    lat = np.where(in_person, world.merchant_lat[merchant], world.home_lat[user] + rng.normal(0.0, 0.01, n))
    lon = np.where(in_person, world.merchant_lon[merchant], world.home_lon[user] + rng.normal(0.0, 0.01, n))
    country = np.where(in_person, CITY_COUNTRY[world.merchant_city[merchant]], CITY_COUNTRY[world.home_city[user]])
    device_slot = (rng.random(n) * world.n_devices[user]).astype(np.int64)
    device = np.where(in_person, -1, user * DEVICES_PER_CUSTOMER + device_slot)
    return Rows(
        user=user, merchant=merchant, t=t, amount=amount, category=category, channel=channel,
        lat=np.round(lat, 5), lon=np.round(lon, 5), country=country, device=device,
        scenario=np.zeros(n, dtype=np.int8),
    )
