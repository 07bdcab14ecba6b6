"""The feature vector: column names and order, one-line descriptions, spec version and hash."""

from __future__ import annotations

import hashlib

FEATURE_SPEC_VERSION = 1

#: Window lengths in seconds, by suffix.
USER_WINDOWS: tuple[tuple[str, int], ...] = (("1h", 3600), ("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
MEAN_WINDOWS: tuple[tuple[str, int], ...] = USER_WINDOWS[1:]
MERCHANT_WINDOWS: tuple[tuple[str, int], ...] = (("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400))
CHANNELS: tuple[str, ...] = ("card_present", "online", "atm", "transfer", "contactless", "other")
CATEGORY_BUCKETS = 32

_STATIC: dict[str, str] = {
    "amount": "transaction amount",
    "log_amount": "log(1 + amount)",
    "hour_sin": "sin of the hour of day (UTC, cyclic, second resolution)",
    "hour_cos": "cos of the hour of day (UTC, cyclic, second resolution)",
    "is_weekend": "1 on Saturday or Sunday (UTC)",
    "is_night": "1 when the UTC hour is <= night_end_hour (6 by default, as the handbook)",
    **{f"channel_{c}": f"1 when the channel is {c}" for c in CHANNELS},
    "channel_missing": "1 when the channel is not given",
    "category_bucket": f"CRC-32 bucket 0..{CATEGORY_BUCKETS - 1} of merchant_category, {CATEGORY_BUCKETS} if missing",
    "category_missing": "1 when merchant_category is not given",
    "device_missing": "1 when device_id is not given",
    "country_missing": "1 when country is not given",
}

_USER: dict[str, str] = {
    "seconds_since_last": "seconds since the user's previous transaction (30 days if none; 0 if out of order)",
    "first_transaction": "1 when the user has no previous transaction in state",
    "amount_change_vs_last": "amount minus the previous amount (0 if none)",
    "amount_ratio_vs_last": "amount / previous amount (previous floored at 0.01; 1 if none)",
    **{
        name: text
        for w, _ in MEAN_WINDOWS
        for name, text in (
            (f"amount_ratio_mean_{w}", f"amount / the user's mean over the previous {w} (1 if none)"),
            (f"amount_zscore_{w}", f"(amount - {w} mean) / {w} std, std floored at 1.00 (0 if none)"),
        )
    },
    **{
        name: text
        for w, _ in USER_WINDOWS
        for name, text in (
            (f"count_{w}", f"user's transactions in the last {w}, this one included"),
            (f"mean_amount_{w}", f"user's mean amount over the last {w}, this one included"),
            (f"max_amount_{w}", f"user's largest amount over the last {w}, this one included"),
            (f"min_amount_{w}", f"user's smallest amount over the last {w}, this one included"),
        )
    },
    "dist_prev_km": "haversine km from the previous located transaction (0 if either has no coordinates)",
    "dist_home_km": "haversine km from the user's usual location (running mean; 0 if unknown)",
    "speed_kmh": "dist_prev_km / hours since that transaction (at least 1 minute; 0 if unknown)",
    "coords_missing": "1 when this transaction or the previous located one is missing, so distances are imputed",
    "new_merchant": "1 when the merchant is not among the user's recent merchants",
    "new_category": "1 when the category is given and not among the user's recent categories",
    "new_device": "1 when the device is given and not among the user's recent devices",
    "distinct_merchants_1d": "distinct merchants of the user over the last 1d, this one included",
}

_MERCHANT: dict[str, str] = {
    name: text
    for w, _ in MERCHANT_WINDOWS
    for name, text in (
        (f"merchant_count_{w}", f"merchant transactions in ({w} + label delay, label delay] before this one"),
        (f"merchant_risk_{w}", f"frauds known now / transactions in that delayed {w} window (0 if empty)"),
    )
}

FEATURE_DESCRIPTIONS: dict[str, str] = {**_STATIC, **_USER, **_MERCHANT}
STATIC_NAMES: tuple[str, ...] = tuple(_STATIC)
USER_NAMES: tuple[str, ...] = tuple(_USER)
MERCHANT_NAMES: tuple[str, ...] = tuple(_MERCHANT)
FEATURE_NAMES: tuple[str, ...] = STATIC_NAMES + USER_NAMES + MERCHANT_NAMES
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

#: The handbook's feature columns and the fraudstream columns that define them identically.
HANDBOOK_COLUMNS: dict[str, str] = {
    "TX_DURING_WEEKEND": "is_weekend",
    "TX_DURING_NIGHT": "is_night",
    **{f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW": f"count_{n}d" for n in (1, 7, 30)},
    **{f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW": f"mean_amount_{n}d" for n in (1, 7, 30)},
    **{f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW": f"merchant_count_{n}d" for n in (1, 7, 30)},
    **{f"TERMINAL_ID_RISK_{n}DAY_WINDOW": f"merchant_risk_{n}d" for n in (1, 7, 30)},
}

#: Bumped by hand whenever a definition changes without a name changing.
_DEFINITION_ID = "fraudstream-features/windows-incl-current/merchant-delayed/cents/seconds/v1"


def feature_spec_hash() -> str:
    """sha256 over names, version and definition id: a model trained on other features is refused."""
    digest = hashlib.sha256()
    digest.update(f"{FEATURE_SPEC_VERSION}\n{_DEFINITION_ID}\n".encode())
    digest.update("\n".join(FEATURE_NAMES).encode())
    return digest.hexdigest()
