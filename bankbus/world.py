"""The simulated world's fixed facts: cities, merchant categories and their channels, daily rhythms, distances."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Home cities of customers and merchants: (name, latitude, longitude, ISO country).
CITIES: tuple[tuple[str, float, float, str], ...] = (
    ("Brussels", 50.85, 4.35, "BE"),
    ("Antwerp", 51.22, 4.40, "BE"),
    ("Paris", 48.86, 2.35, "FR"),
    ("Lyon", 45.76, 4.84, "FR"),
    ("Amsterdam", 52.37, 4.90, "NL"),
    ("Berlin", 52.52, 13.40, "DE"),
    ("Munich", 48.14, 11.58, "DE"),
    ("Madrid", 40.42, -3.70, "ES"),
    ("Milan", 45.46, 9.19, "IT"),
    ("Vienna", 48.21, 16.37, "AT"),
    ("Lisbon", 38.72, -9.14, "PT"),
    ("Dublin", 53.35, -6.26, "IE"),
)
#: Where fraudsters act from: every one is more than 3,000 km from every home city.
REMOTE_CITIES: tuple[tuple[str, float, float, str], ...] = (
    ("New York", 40.71, -74.01, "US"),
    ("Sao Paulo", -23.55, -46.63, "BR"),
    ("Lagos", 6.52, 3.38, "NG"),
    ("Singapore", 1.35, 103.82, "SG"),
    ("Mumbai", 19.08, 72.88, "IN"),
    ("Bangkok", 13.76, 100.50, "TH"),
)
COUNTRIES: tuple[str, ...] = tuple(sorted({c[3] for c in CITIES + REMOTE_CITIES}))

#: Contract channel names, in the order the probability columns below use.
CHANNELS: tuple[str, ...] = ("card_present", "contactless", "online", "atm", "transfer")
IN_PERSON_CHANNELS = frozenset({0, 1, 3})

#: Category -> (amount scale against the customer's profile, channel probabilities in CHANNELS order).
CATEGORY_TABLE: dict[str, tuple[float, tuple[float, ...]]] = {
    "grocery": (1.0, (0.5, 0.5, 0.0, 0.0, 0.0)),
    "restaurant": (0.8, (0.4, 0.6, 0.0, 0.0, 0.0)),
    "fuel": (1.0, (0.7, 0.3, 0.0, 0.0, 0.0)),
    "pharmacy": (0.6, (0.5, 0.5, 0.0, 0.0, 0.0)),
    "retail": (1.3, (0.5, 0.3, 0.2, 0.0, 0.0)),
    "entertainment": (0.9, (0.3, 0.0, 0.7, 0.0, 0.0)),
    "electronics": (2.0, (0.4, 0.0, 0.6, 0.0, 0.0)),
    "travel": (2.0, (0.2, 0.0, 0.8, 0.0, 0.0)),
    "atm": (1.5, (0.0, 0.0, 0.0, 1.0, 0.0)),
    "utilities": (1.2, (0.0, 0.0, 0.3, 0.0, 0.7)),
    "ecommerce": (1.0, (0.0, 0.0, 1.0, 0.0, 0.0)),
    "digital_goods": (0.4, (0.0, 0.0, 1.0, 0.0, 0.0)),
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_TABLE)
CATEGORY_SCALE = np.array([v[0] for v in CATEGORY_TABLE.values()])
CHANNEL_CUMULATIVE = np.cumsum(np.array([v[1] for v in CATEGORY_TABLE.values()]), axis=1)
CHANNEL_CUMULATIVE[:, -1] = 1.0  # a uniform draw below 1 always lands on some channel
#: Categories sold only online: customers use them wherever the merchant is.
ONLINE_ONLY = np.array([v[1][2] == 1.0 for v in CATEGORY_TABLE.values()])
#: Categories that card testers probe: online merchants with small, instant purchases.
CARD_TESTING_CATEGORIES = np.array([CATEGORIES.index("digital_goods"), CATEGORIES.index("ecommerce")])

#: Relative share of the day's transactions in each UTC hour (quiet nights, lunch and evening peaks).
HOUR_WEIGHTS = np.array(
    [0.4, 0.25, 0.15, 0.1, 0.1, 0.2, 0.6, 1.5, 2.5, 3.0, 3.5, 4.0,
     5.0, 4.5, 3.8, 3.5, 3.8, 4.5, 5.0, 4.8, 4.0, 3.0, 2.0, 1.0]
)
HOUR_PROBABILITIES = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
#: Activity multiplier per weekday, Monday first.
WEEKDAY_FACTOR = np.array([0.95, 0.95, 1.0, 1.0, 1.1, 1.25, 0.8])

#: Largest legitimate amount; larger ones are the large-amount scenario (as in the handbook).
LARGE_AMOUNT = 220.0
#: Faster than this between two card uses is not travel (a long-haul flight is ~900 km/h).
PLAUSIBLE_SPEED_KMH = 900.0


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in km, element-wise over NumPy arrays or scalars."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
