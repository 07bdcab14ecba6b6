"""The compiled per-batch user fold equals the reference kernels value for value, and its codec the reference bytes.

Histories are generated: several users interleaved, ties, gaps past every window, events older than the grace
period (late), huge amounts (128-bit sums of squares), missing coordinates, categories and devices, and random
batch boundaries with the state carried between batches as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.config import DAY_S, FeatureConfig
from features.fields import MISSING, TxnFields
from features.state import UserState
from features.transform import fold_kernel, late_kernel, user_kernel
from features.user_fold import UserEvents, fold_user_batch
from fraudstream.errors import StateStoreError
from tests.unit.test_features_encoding import busy_user

T0 = 1_700_000_000
GAPS = st.one_of(
    st.integers(0, 5),  # ties and near-ties
    st.integers(0, 4000),  # inside the hour
    st.integers(0, 2 * DAY_S),
    st.sampled_from([3600, 3601, DAY_S, DAY_S + 1, 7 * DAY_S, 30 * DAY_S, 30 * DAY_S + 1, 40 * DAY_S]),
    st.integers(-3 * 3600, -1),  # out of order: inside or beyond the grace period
)
#: per history: everyday amounts, any amount, encoding edges, or a whale whose squares overflow 64 bits
CENTS = st.sampled_from(
    [
        st.integers(0, 50_000),
        st.integers(0, 1_000_000_000),
        st.sampled_from([0, 1, 65_535, 65_536, 16_777_215, 16_777_216]),
        st.integers(900_000_000, 1_000_000_000),
    ]
)


@dataclass
class Event:
    user: int
    f: TxnFields


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Event], list[int], int]:
    n_users = draw(st.integers(1, 4))
    n = draw(st.integers(1, 60))
    clocks = [T0 + draw(st.integers(0, DAY_S)) for _ in range(n_users)]
    amounts = draw(CENTS)
    events = []
    for _ in range(n):
        u = draw(st.integers(0, n_users - 1))
        clocks[u] = max(clocks[u] + draw(GAPS), T0 - 60 * DAY_S)
        cents = draw(amounts)
        located = draw(st.booleans())
        lat = draw(st.integers(-90_000_000, 90_000_000)) if located else None
        lon = draw(st.integers(-180_000_000, 180_000_000)) if located else None
        f = TxnFields(
            ts=clocks[u],
            cents=cents,
            amount=cents / 100.0,
            merchant_h=draw(st.integers(0, 30)),
            category_h=draw(st.sampled_from([MISSING, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])),
            device_h=draw(st.sampled_from([MISSING, 11, 12, 13, 14, 15, 16, 17, 18, 19])),
            lat_e6=lat,
            lon_e6=lon,
            channel=MISSING,
            country_missing=False,
        )
        events.append(Event(u, f))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=4))))
    grace = draw(st.sampled_from([0, 3600, 2 * 3600]))
    return events, cuts, grace


def reference(events: list[Event], n_users: int, cfg: FeatureConfig) -> tuple[np.ndarray, list[bool], list[bytes]]:
    states = [UserState() for _ in range(n_users)]
    rows, late = [], []
    for e in events:
        s = states[e.user]
        rows.append(user_kernel(s, e.f))
        late.append(late_kernel(s, e.f.ts, cfg))
        if not late[-1]:
            states[e.user] = fold_kernel(s, e.f, cfg)
    return np.asarray(rows), late, [s.to_bytes() if s.n_total else b"" for s in states]


def columns(events: list[Event]) -> UserEvents:
    def col(get, dtype=np.int64):  # type: ignore[no-untyped-def]
        return np.asarray([get(e) for e in events], dtype=dtype)

    return UserEvents(
        user=col(lambda e: e.user),
        ts=col(lambda e: e.f.ts),
        cents=col(lambda e: e.f.cents),
        amount=col(lambda e: e.f.amount, np.float64),
        merchant_h=col(lambda e: e.f.merchant_h),
        category_h=col(lambda e: e.f.category_h),
        device_h=col(lambda e: e.f.device_h),
        lat_e6=col(lambda e: e.f.lat_e6 or 0),
        lon_e6=col(lambda e: e.f.lon_e6 or 0),
        located=col(lambda e: e.f.lat_e6 is not None, np.bool_),
    )


@settings(max_examples=300, deadline=None)
@given(histories())
def test_fold_equals_the_reference_kernels_however_batched(history: tuple[list[Event], list[int], int]) -> None:
    events, cuts, grace = history
    cfg = FeatureConfig(grace_period_s=grace)
    n_users = max(e.user for e in events) + 1
    want_rows, want_late, want_states = reference(events, n_users, cfg)
    states = [b""] * n_users
    rows, late = [], []
    for lo, hi in zip([0, *cuts], [*cuts, len(events)], strict=True):
        out = fold_user_batch(states, columns(events[lo:hi]), cfg)
        states = [new if new_touched else old for old, new, new_touched in _touched(states, out.states, events[lo:hi])]
        rows.append(out.features)
        late += out.late.tolist()
    got = np.vstack(rows)
    assert late == want_late
    np.testing.assert_array_equal(got, want_rows)  # exact: same sums, same divisions, same rounding
    assert states == want_states


def _touched(old: list[bytes], new: list[bytes], batch: list[Event]) -> list[tuple[bytes, bytes, bool]]:
    """A user without events in the batch keeps its bytes (the store writes only users it folded)."""
    present = {e.user for e in batch}
    return [(o, n, u in present) for u, (o, n) in enumerate(zip(old, new, strict=True))]


def test_fold_reads_and_writes_the_reference_encoding() -> None:
    user = busy_user()
    data = user.to_bytes()
    one = np.ones(1, dtype=np.int64)
    nothing = UserEvents(one * 0, one * (user.last_ts + 10), one * 990, np.array([9.9]), one * 3, -one, -one,
                         one * 0, one * 0, np.zeros(1, dtype=bool))  # fmt: skip
    out = fold_user_batch([data], nothing, FeatureConfig())
    f = TxnFields(user.last_ts + 10, 990, 9.9, 3, MISSING, MISSING, None, None, MISSING, False)
    assert out.features[0].tolist() == user_kernel(user, f)
    assert out.states[0] == fold_kernel(user, f, FeatureConfig()).to_bytes()
    assert UserState.from_bytes(out.states[0]) == fold_kernel(user, f, FeatureConfig())


@pytest.mark.parametrize("damage", ["truncate", "trailing", "format"])
def test_a_corrupt_record_is_refused_with_a_clear_error(damage: str) -> None:
    data = busy_user().to_bytes()
    bad = {"truncate": data[:-3], "trailing": data + b"\x00", "format": b"\x09" + data[1:]}[damage]
    one = np.ones(1, dtype=np.int64)
    events = UserEvents(one * 0, one * T0, one * 100, np.array([1.0]), one, -one, -one, one * 0, one * 0,
                        np.zeros(1, dtype=bool))  # fmt: skip
    with pytest.raises(StateStoreError, match="corrupt"):
        fold_user_batch([bad], events, FeatureConfig())


def test_every_truncation_is_refused() -> None:
    data = busy_user(days=3).to_bytes()
    one = np.ones(1, dtype=np.int64)
    events = UserEvents(one * 0, one * T0, one * 100, np.array([1.0]), one, -one, -one, one * 0, one * 0,
                        np.zeros(1, dtype=bool))  # fmt: skip
    for cut in range(1, len(data)):
        with pytest.raises(StateStoreError):
            fold_user_batch([data[:cut]], events, FeatureConfig())
