"""Vectorised `window_kernel` for the offline path: the same integer sums and float divisions, per row.

Rows are grouped by user (stable, so stream order within a user); each window is a range [lo, j] of
that order, answered with cumulative sums (count, sum, sum of squares) and a sparse table (max, min).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.spec import USER_WINDOWS
from features.transform import STD_FLOOR_CENTS, zscore_pair

_I64 = npt.NDArray[np.int64]


def _range_extreme(values: _I64, lo: _I64, hi: _I64, take_max: bool) -> _I64:
    """max (or min) of values[lo..hi] inclusive for every row, via a sparse table."""
    length = hi - lo + 1
    levels = [values]
    span = 1
    while span * 2 <= int(length.max(initial=1)):
        prev = levels[-1]
        nxt = prev.copy()
        pick = np.maximum if take_max else np.minimum
        nxt[: len(prev) - span] = pick(prev[: len(prev) - span], prev[span:])
        levels.append(nxt)
        span *= 2
    k = np.floor(np.log2(length)).astype(np.int64)
    result = np.empty_like(values[lo])
    for level in np.unique(k):
        rows = np.flatnonzero(k == level)
        table = levels[level]
        left, right = table[lo[rows]], table[hi[rows] - (1 << int(level)) + 1]
        result[rows] = np.maximum(left, right) if take_max else np.minimum(left, right)
    return result


def window_block(user_codes: npt.NDArray[np.intp], ts: _I64, cents: _I64) -> npt.NDArray[np.float64]:
    """The window_kernel columns for rows in stream order, as if each user's events were folded in order."""
    n = len(ts)
    key = (user_codes.astype(np.int64) << 32) | ts
    order = np.argsort(key, kind="stable")
    skey, sc = key[order], cents[order]
    j = np.arange(n, dtype=np.int64)
    csum = np.concatenate(([0], np.cumsum(sc)))
    exact_squares = n == 0 or int(np.abs(sc).max()) ** 2 * n < 2**62
    csq = np.concatenate(([0], np.cumsum(sc * sc))) if exact_squares else None
    ratios: list[npt.NDArray[np.float64]] = []
    counts: list[npt.NDArray[np.float64]] = []
    for name, width in USER_WINDOWS:
        lo = np.searchsorted(skey, (key[order] - width), "right").astype(np.int64)
        prior = j - lo
        total = csum[j] - csum[lo]
        counts += [
            (prior + 1).astype(np.float64),
            (total + sc).astype(np.float64) / (prior + 1).astype(np.float64) / 100.0,
            _range_extreme(sc, lo, j, True) / 100.0,
            _range_extreme(sc, lo, j, False) / 100.0,
        ]
        if name == "1h":
            continue
        ratio, z = np.ones(n), np.zeros(n)
        has = prior > 0
        if csq is not None:
            squares = (csq[j] - csq[lo])[has].astype(np.float64)
            nn = prior[has].astype(np.float64)
            mean = total[has].astype(np.float64) / nn
            var = squares / nn - mean * mean
            std = np.where(var > 0.0, np.sqrt(np.maximum(var, 0.0)), 0.0)
            c = sc[has].astype(np.float64)
            ratio[has] = c / np.maximum(mean, 1.0)
            z[has] = (c - mean) / np.maximum(std, STD_FLOOR_CENTS)
        else:  # amounts too large for exact int64 squares: Python ints, row by row
            for r in np.flatnonzero(has):
                window = sc[lo[r] : r].tolist()
                squares_int = sum(v * v for v in window)
                ratio[r], z[r] = zscore_pair(int(sc[r]), int(total[r]), squares_int, int(prior[r]))
        ratios += [ratio, z]
    block = np.column_stack(ratios + counts)
    out = np.empty_like(block)
    out[order] = block
    return out
