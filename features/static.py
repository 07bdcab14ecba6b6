"""Features of the transaction alone (time of day, channel, category, missing flags), vectorised per batch."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.config import DAY_S, FeatureConfig
from features.fields import TxnColumns
from features.spec import CATEGORY_BUCKETS, CHANNELS, STATIC_NAMES

_angles = 2.0 * np.pi * np.arange(DAY_S, dtype=np.float64) / DAY_S
#: Lookup tables by second of day: identical values whatever the batch size.
HOUR_SIN = np.sin(_angles)
HOUR_COS = np.cos(_angles)


def static_features(
    ts: npt.NDArray[np.int64],
    amount: npt.NDArray[np.float64],
    channel: npt.NDArray[np.int64],
    category_h: npt.NDArray[np.int64],
    device_h: npt.NDArray[np.int64],
    country_missing: npt.NDArray[np.bool_],
    cfg: FeatureConfig,
) -> npt.NDArray[np.float64]:
    """One row per transaction, columns STATIC_NAMES. Missing codes are -1."""
    n = len(ts)
    out = np.zeros((n, len(STATIC_NAMES)), dtype=np.float64)
    second_of_day = ts % DAY_S
    weekday = (ts // DAY_S + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    col = 0
    out[:, col] = amount
    out[:, col + 1] = np.log1p(amount)
    out[:, col + 2] = HOUR_SIN[second_of_day]
    out[:, col + 3] = HOUR_COS[second_of_day]
    out[:, col + 4] = weekday >= 5
    out[:, col + 5] = second_of_day // 3600 <= cfg.night_end_hour
    col += 6
    for code in range(len(CHANNELS)):
        out[:, col + code] = channel == code
    out[:, col + len(CHANNELS)] = channel < 0
    col += len(CHANNELS) + 1
    missing_category = category_h < 0
    out[:, col] = np.where(missing_category, CATEGORY_BUCKETS, category_h % CATEGORY_BUCKETS)
    out[:, col + 1] = missing_category
    out[:, col + 2] = device_h < 0
    out[:, col + 3] = country_missing
    return out


def static_columns(cols: TxnColumns, cfg: FeatureConfig) -> npt.NDArray[np.float64]:
    """STATIC_NAMES columns of a batch's TxnColumns."""
    c = cols
    return static_features(c.ts, c.amount, c.channel, c.category_h, c.device_h, c.country_missing, cfg)
