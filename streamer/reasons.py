"""Alert reasons: the features that pushed this score up the most, in words an analyst reads.

The contributions are the scorer's own attributions (models/attribution.py: they sum, with a base value, to the
score). Ranking is vectorised over the batch; text is built only for the alerted rows the caller passes in. One
reason per feature family: the windows of one ratio (amount_ratio_mean_1h/_1d/_7d/_30d), hour_sin/hour_cos,
amount/log_amount each give at most one reason, the strongest.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from fraudstream.contracts import Reason

_WINDOW_WORDS = {"1h": "hour", "1d": "day", "7d": "7 days", "30d": "30 days"}
_WINDOW_ADJECTIVES = {"1h": "1-hour", "1d": "1-day", "7d": "7-day", "30d": "30-day"}

Row = dict[str, float]


def _num(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _duration(seconds: float) -> str:
    seconds = max(float(seconds), 0.0)
    for size, unit in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = round(seconds)
    return f"{n} second{'s' if n != 1 else ''}"


def _window(name: str) -> str:
    suffix = name.rsplit("_", 1)[-1]
    return _WINDOW_WORDS.get(suffix, suffix)


def _window_adj(name: str) -> str:
    suffix = name.rsplit("_", 1)[-1]
    return _WINDOW_ADJECTIVES.get(suffix, suffix)


def _flag(on: str, off: str) -> Callable[[str, float, Row], str]:
    return lambda _name, value, _row: on if value >= 0.5 else off


def _hour(_name: str, _value: float, row: Row) -> str:
    sin, cos = row.get("hour_sin"), row.get("hour_cos")
    if sin is None or cos is None:
        return "time of day"
    hours = (math.atan2(sin, cos) / (2 * math.pi) * 24) % 24
    return f"at {int(hours):02d}:{round(hours % 1 * 60) % 60:02d} UTC"


def _dist_prev(_name: str, value: float, row: Row) -> str:
    text = f"{_num(value)} km from the previous transaction"
    since = row.get("seconds_since_last")
    return f"{text} {_duration(since)} earlier" if since is not None else text


_EXACT: dict[str, Callable[[str, float, Row], str]] = {
    "amount": lambda _n, v, _r: f"amount {_num(v)}",
    "log_amount": lambda _n, v, _r: f"amount {_num(math.expm1(v))}",
    "hour_sin": _hour,
    "hour_cos": _hour,
    "is_weekend": _flag("on a weekend", "on a weekday"),
    "is_night": _flag("at night", "during the day"),
    "seconds_since_last": lambda _n, v, _r: f"{_duration(v)} since the user's previous transaction",
    "first_transaction": _flag("first transaction seen for this user", "a user with history"),
    "amount_change_vs_last": lambda _n, v, _r: (
        f"amount {_num(abs(v))} {'more' if v >= 0 else 'less'} than the previous transaction"
    ),
    "amount_ratio_vs_last": lambda _n, v, _r: f"amount {v:.1f}x the previous transaction",
    "dist_prev_km": _dist_prev,
    "dist_home_km": lambda _n, v, _r: f"{_num(v)} km from the user's usual location",
    "speed_kmh": lambda _n, v, _r: f"implied travel speed {_num(v)} km/h",
    "coords_missing": _flag("location unknown", "location known"),
    "new_merchant": _flag("first transaction at this merchant", "a merchant the user has used before"),
    "new_category": _flag("first transaction in this merchant category", "a familiar merchant category"),
    "new_device": _flag("first transaction from this device", "a known device"),
    "distinct_merchants_1d": lambda _n, v, _r: f"{_num(v)} different merchants in the last day",
    "channel_missing": _flag("channel not given", "channel given"),
    "category_missing": _flag("merchant category not given", "merchant category given"),
    "device_missing": _flag("device not given", "device given"),
    "country_missing": _flag("country not given", "country given"),
    "category_bucket": lambda _n, v, _r: f"merchant category group {_num(v)}",
}

_PATTERNS: list[tuple[re.Pattern[str], Callable[[str, float, Row], str]]] = [
    (re.compile(r"amount_ratio_mean_\w+"), lambda n, v, _r: f"amount {v:.1f}x the user's {_window_adj(n)} mean"),
    (
        re.compile(r"amount_zscore_\w+"),
        lambda n, v, _r: (
            f"amount {abs(v):.1f} standard deviations {'above' if v >= 0 else 'below'} the user's {_window_adj(n)} mean"
        ),
    ),
    (re.compile(r"count_\w+"), lambda n, v, _r: f"{_num(v)} transactions by the user in the last {_window(n)}"),
    (re.compile(r"mean_amount_\w+"), lambda n, v, _r: f"user's mean amount {_num(v)} over the last {_window(n)}"),
    (re.compile(r"max_amount_\w+"), lambda n, v, _r: f"user's largest amount {_num(v)} in the last {_window(n)}"),
    (re.compile(r"min_amount_\w+"), lambda n, v, _r: f"user's smallest amount {_num(v)} in the last {_window(n)}"),
    (
        re.compile(r"merchant_risk_\w+"),
        lambda n, v, _r: f"merchant fraud rate {v:.0%} over the last {_window(n)} (known labels)",
    ),
    (
        re.compile(r"merchant_count_\w+"),
        lambda n, v, _r: f"merchant had {_num(v)} transactions over the last {_window(n)} (before the label delay)",
    ),
    (re.compile(r"channel_\w+"), lambda n, v, _r: f"{'' if v >= 0.5 else 'not '}via {n.removeprefix('channel_')}"),
]


@functools.cache
def _template_of(name: str) -> Callable[[str, float, Row], str] | None:
    """The phrase template of a feature name (exact names first, then the patterns), once per name."""
    template = _EXACT.get(name)
    if template is None:
        template = next((t for pattern, t in _PATTERNS if pattern.fullmatch(name)), None)
    return template


def reason_text(name: str, value: float, row: Row) -> str:
    """One short phrase for a feature value, using related features of the same row where that helps."""
    if not math.isfinite(value):
        return f"{name} unknown"
    template = _template_of(name)
    if template is None:
        return f"{name.replace('_', ' ')} {_num(value)}"
    return template(name, value, row)


def top_indices(contributions: np.ndarray, k: int) -> np.ndarray:
    """n x min(k, F) column indices, largest contribution first (ties broken by column order)."""
    C = np.nan_to_num(np.asarray(contributions, dtype=np.float64), nan=-np.inf)
    k = min(k, C.shape[1])
    order = np.argsort(-C, axis=1, kind="stable")
    return order[:, :k]


#: Encodings that carry signal for a model but mean nothing to an analyst on their own.
NOT_A_REASON = frozenset(
    {"category_bucket", "channel_missing", "category_missing", "device_missing", "country_missing"}
)


_WINDOW_SUFFIX = re.compile(r"_(\d+[smhdw])$")
_FAMILY_ALIASES = {"hour_sin": "hour", "hour_cos": "hour", "log_amount": "amount"}
#: Families that say the same thing in two ways: the amount against the user's window mean, as a ratio or a z-score.
_SAME_FAMILY = {"amount_zscore": "amount_vs_user_mean", "amount_ratio_mean": "amount_vs_user_mean",
                # the user's amounts in a window: with one transaction in it, max, min and mean read the same
                "max_amount": "user_window_amounts", "min_amount": "user_window_amounts",
                "mean_amount": "user_window_amounts"}


def reason_family(name: str) -> str:
    """The family a feature belongs to: its name without the window suffix (count_1h -> count), with aliases for
    features that read the same (hour_sin/hour_cos, amount/log_amount, the amount's ratio and z-score
    against the user's window means; the user's largest, smallest and mean amount in a window)."""
    name = _FAMILY_ALIASES.get(name, name)
    family = _WINDOW_SUFFIX.sub("", name)
    return _SAME_FAMILY.get(family, family)


def explain(names: Sequence[str], X: np.ndarray, contributions: np.ndarray, k: int) -> list[list[Reason]]:
    """Top-k reasons per row of X (only pass the alerted rows): features pushing the score up the most.

    Only positive contributions count; encodings that mean nothing to an analyst are skipped, and one feature
    family (reason_family: the windows of one ratio, hour_sin and hour_cos, amount and log_amount) gives at most one
    reason, its strongest member's.
    """
    if len(X) == 0:
        return []
    order = top_indices(contributions, len(names))
    result: list[list[Reason]] = []
    for i, row_order in enumerate(order):
        row = dict(zip(names, (float(v) for v in X[i]), strict=False))
        reasons: list[Reason] = []
        seen: set[str] = set()
        families: set[str] = set()
        for j in row_order:
            if len(reasons) == k:
                break
            value, contribution = float(X[i, j]), float(contributions[i, j])
            if not math.isfinite(contribution) or contribution <= 0.0:
                break  # sorted: nothing after this pushes the score up
            if names[j] in NOT_A_REASON:
                continue
            family = reason_family(names[j])
            text = reason_text(names[j], value, row)
            if text in seen or family in families:
                continue
            seen.add(text)
            families.add(family)
            reasons.append(
                Reason(
                    feature=names[j],
                    value=value if math.isfinite(value) else 0.0,
                    contribution=contribution,
                    text=text,
                )
            )
        result.append(reasons)
    return result
