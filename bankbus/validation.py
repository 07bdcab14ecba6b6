"""Vectorised row validation with the Transaction contract's rules; each bad row gets its first reason.

`clean(raw, n, timezone=..., timestamp_unit=...)` takes source columns already named like the canonical
ones and returns the canonical frame (all rows) and an array of reasons (None for rows that pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bankbus.frames import CANONICAL_COLUMNS, LABEL_COLUMNS
from fraudstream.contracts import MAX_AMOUNT, MAX_EVENT_TIME, MIN_EVENT_TIME, Channel

ID_MAX, CATEGORY_MAX, DEVICE_MAX = 128, 64, 128
_TZ_SUFFIX = r"(?:Z|[+-]\d\d:?\d\d)\s*$"
_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "1.0"}, {"0", "false", "f", "no", "n", "0.0"}


class Reasons:
    """The first failing rule per row."""

    def __init__(self, n: int) -> None:
        self.values = np.full(n, None, dtype=object)

    def add(self, mask: Any, reason: str | tuple[str, pd.Series]) -> None:
        """Give `reason` to the rows in `mask` that have none yet; (prefix, values) quotes each row's value."""
        mask = np.asarray(mask, dtype=bool) & pd.isna(self.values)
        if not mask.any():
            return
        if isinstance(reason, str):
            self.values[mask] = reason
        else:
            prefix, values = reason
            self.values[mask] = [f"{prefix} '{str(v)[:40]}'" for v in values.to_numpy(dtype=object)[mask]]

    @property
    def bad(self) -> np.ndarray:
        flags: np.ndarray = ~pd.isna(self.values)
        return flags


def _strings(values: pd.Series) -> pd.Series:
    """Text with surrounding spaces removed; integral numbers without a trailing '.0'; missing as NaN."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("str")
    if pd.api.types.is_float_dtype(values):
        whole = values.notna() & np.isfinite(values) & (values == np.round(values))
        text = values.astype("str")
        return text.where(~whole, values.where(whole, 0).astype("int64").astype("str"))
    text = values.astype("str").str.strip()
    return text.where(text != "", np.nan)


def _quoted(prefix: str, raw: pd.Series) -> tuple[str, pd.Series]:
    return prefix, raw


def _identifier(name: str, raw: pd.Series, reasons: Reasons) -> pd.Series:
    text = _strings(raw)
    reasons.add(text.isna(), f"missing {name}")
    reasons.add(text.str.len() > ID_MAX, f"{name} longer than {ID_MAX} characters")
    if not pd.api.types.is_numeric_dtype(raw):
        reasons.add(text.str.contains(r"[\x00-\x1f]", regex=True, na=False), f"{name} contains control characters")
    return text


def _timestamps(raw: pd.Series, timezone: str, unit: str | None, reasons: Reasons) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = raw.dt.tz_convert("UTC") if raw.dt.tz is not None else raw.dt.tz_localize(
            timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    elif unit is not None:
        numbers = pd.to_numeric(raw, errors="coerce")
        stamps = pd.to_datetime(numbers.where(np.isfinite(numbers)), unit=unit, utc=True, errors="coerce")
    else:
        text = _strings(raw)
        aware = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy()
        stamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
        if aware.any():
            stamps[aware] = pd.to_datetime(text[aware], utc=True, errors="coerce", format="ISO8601")
        if (~aware).any():
            naive = pd.to_datetime(text[~aware], errors="coerce", format="ISO8601")
            stamps[~aware] = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    stamps = stamps.dt.as_unit("ns")
    reasons.add(raw.isna(), "missing timestamp")
    reasons.add(stamps.isna(), _quoted("unparseable timestamp", raw))
    outside = (stamps < pd.Timestamp(MIN_EVENT_TIME)) | (stamps >= pd.Timestamp(MAX_EVENT_TIME))
    reasons.add(outside, "timestamp outside [2000-01-01, 2100-01-01)")
    return stamps


def _numbers(name: str, raw: pd.Series, reasons: Reasons, *, required: bool) -> pd.Series:
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    missing = raw.isna() | (_strings(raw).isna() if raw.dtype == object or pd.api.types.is_string_dtype(raw) else False)
    if required:
        reasons.add(missing, f"missing {name}")
    reasons.add(numbers.isna() & ~missing, _quoted(f"{name} is not a number:", raw))
    reasons.add(np.isinf(numbers), f"{name} is not finite")
    return numbers


def _optional_text(name: str, raw: pd.Series | None, n: int, reasons: Reasons, max_len: int) -> pd.Series:
    if raw is None:
        return pd.Series([np.nan] * n, dtype="str")
    text = _strings(raw)
    reasons.add(text.str.len() > max_len, f"{name} longer than {max_len} characters")
    return text


def _pattern(name: str, text: pd.Series, pattern: str, reasons: Reasons, example: str) -> pd.Series:
    text = text.str.upper()
    reasons.add(text.notna() & ~text.str.fullmatch(pattern, na=False), _quoted(f"{name} is not like {example}:", text))
    return text


def _flags(raw: pd.Series, reasons: Reasons) -> pd.Series:
    text = _strings(raw).str.lower()
    flag = pd.Series(np.where(text.isin(_TRUE), 1, 0), index=raw.index, dtype="int8")
    reasons.add(~text.isin(_TRUE | _FALSE), _quoted("is_fraud is not 0/1:", raw))
    return flag


def _labels(raw: Mapping[str, pd.Series], n: int, reasons: Reasons) -> dict[str, pd.Series]:
    if "is_fraud" not in raw and "fraud_scenario" not in raw:
        return {}
    is_fraud = _flags(raw["is_fraud"], reasons) if "is_fraud" in raw else None
    if "fraud_scenario" in raw:
        numbers = pd.to_numeric(raw["fraud_scenario"], errors="coerce")
        good = numbers.notna() & (numbers == np.round(numbers)) & numbers.between(-1, 127)
        reasons.add(~good, _quoted("fraud_scenario is not an integer in [-1, 127]:", raw["fraud_scenario"]))
        scenario = numbers.where(good, 0).astype("int8")
    else:
        assert is_fraud is not None
        scenario = (-is_fraud).astype("int8")  # -1: fraud of unknown scenario
    if is_fraud is None:
        is_fraud = (scenario != 0).astype("int8")
    reasons.add((is_fraud == 1) != (scenario != 0), "is_fraud and fraud_scenario disagree")
    return {"is_fraud": is_fraud, "fraud_scenario": scenario}


def clean(
    raw: Mapping[str, pd.Series], n: int, *, defaults: Mapping[str, str] | None = None,
    timezone: str = "UTC", timestamp_unit: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Canonical columns for every row and each row's first failing rule (None when it passes)."""
    reasons = Reasons(n)
    defaults = {"currency": "EUR", **(defaults or {})}
    raw = {**{k: pd.Series([v] * n, dtype="str") for k, v in defaults.items() if k not in raw}, **raw}
    raw = {k: v.reset_index(drop=True) for k, v in raw.items()}
    out: dict[str, Any] = {}
    for name in ("transaction_id", "user_id", "merchant_id"):
        out[name] = _identifier(name, raw[name], reasons)
    out["timestamp"] = _timestamps(raw["timestamp"], timezone, timestamp_unit, reasons)
    amount = _numbers("amount", raw["amount"], reasons, required=True)
    reasons.add(amount < 0, "negative amount")
    reasons.add(amount > MAX_AMOUNT, f"amount above {MAX_AMOUNT:,.0f}")
    out["amount"] = amount
    currency = _strings(raw["currency"]).fillna(defaults["currency"])
    out["currency"] = _pattern("currency", currency, r"[A-Z]{3}", reasons, "EUR")
    category = raw.get("merchant_category")
    out["merchant_category"] = _optional_text("merchant_category", category, n, reasons, CATEGORY_MAX)
    channel = _optional_text("channel", raw.get("channel"), n, reasons, 64).str.lower()
    reasons.add(channel.notna() & ~channel.isin([c.value for c in Channel]), _quoted("unknown channel", channel))
    out["channel"] = channel
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        values = raw.get(name)
        number = _numbers(name, values, reasons, required=False) if values is not None else pd.Series(np.nan, range(n))
        reasons.add(number.abs() > bound, f"{name} outside [-{bound:.0f}, {bound:.0f}]")
        out[name] = number
    reasons.add(out["latitude"].isna() != out["longitude"].isna(), "latitude and longitude must come together")
    country = _optional_text("country", raw.get("country"), n, reasons, 2)
    out["country"] = _pattern("country", country, r"[A-Z]{2}", reasons, "BE")
    out["device_id"] = _optional_text("device_id", raw.get("device_id"), n, reasons, DEVICE_MAX)
    out.update(_labels(raw, n, reasons))
    duplicate = out["transaction_id"].where(~reasons.bad).duplicated(keep="first") & ~reasons.bad
    reasons.add(duplicate, "duplicate transaction_id")
    frame = pd.DataFrame({k: (v.to_numpy() if k != "timestamp" else v.array) for k, v in out.items()})
    columns = [*CANONICAL_COLUMNS, *(LABEL_COLUMNS if "is_fraud" in out else ())]
    return frame[columns], reasons.values
