"""Each feature on hand-made sequences, and the streaming window stats against NumPy on the same data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from features.config import FeatureConfig
from features.spec import FEATURE_DESCRIPTIONS, FEATURE_INDEX, FEATURE_NAMES, feature_spec_hash
from features.state import MerchantView, UserState
from features.transform import extract, haversine_km, is_late, update_user
from tests.feature_streams import START, txn

CFG = FeatureConfig()
EMPTY = MerchantView()


def fold(events: list, cfg: FeatureConfig = CFG) -> tuple[UserState, list[dict[str, float]]]:
    user, rows = UserState(), []
    for event in events:
        rows.append(dict(zip(FEATURE_NAMES, extract(user, EMPTY, event, cfg), strict=True)))
        if not is_late(user, event, cfg):
            user = update_user(user, event, cfg)
    return user, rows


def test_spec_is_consistent() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == len(FEATURE_DESCRIPTIONS)
    assert all(FEATURE_DESCRIPTIONS[name] for name in FEATURE_NAMES)
    assert len(feature_spec_hash()) == 64


def test_first_transaction_imputations() -> None:
    _, (row,) = fold([txn(amount=12.5)])
    assert row["first_transaction"] == 1.0 and row["seconds_since_last"] == 30 * 86_400
    assert row["amount_ratio_vs_last"] == 1.0 and row["amount_change_vs_last"] == 0.0
    assert row["amount_ratio_mean_30d"] == 1.0 and row["amount_zscore_30d"] == 0.0
    assert row["count_30d"] == 1.0 and row["mean_amount_30d"] == 12.5 == row["max_amount_1h"] == row["min_amount_7d"]
    assert row["coords_missing"] == 1.0 and row["dist_prev_km"] == 0.0 and row["speed_kmh"] == 0.0
    assert row["channel_missing"] == 1.0 and row["category_missing"] == 1.0 and row["category_bucket"] == 32.0
    assert row["new_merchant"] == 1.0 and row["new_category"] == 0.0 and row["distinct_merchants_1d"] == 1.0


def test_window_edges_are_open_left_closed_right() -> None:
    events = [
        txn(when=START, amount=10.0),
        txn(when=START + timedelta(hours=1), amount=20.0),
        txn(when=START + timedelta(hours=1, seconds=1), amount=30.0),
    ]
    _, rows = fold(events)
    assert rows[1]["count_1h"] == 1.0  # the event exactly 1 h earlier is out: (t - 1h, t]
    assert rows[2]["count_1h"] == 2.0 and rows[2]["mean_amount_1h"] == 25.0
    assert rows[2]["count_1d"] == 3.0 and rows[2]["max_amount_1d"] == 30.0 and rows[2]["min_amount_1d"] == 10.0
    assert rows[1]["seconds_since_last"] == 3600.0 and rows[1]["amount_ratio_vs_last"] == 2.0
    assert rows[2]["amount_change_vs_last"] == pytest.approx(10.0)


def test_windows_match_numpy_on_a_random_sequence() -> None:
    rng = np.random.default_rng(3)
    seconds = np.sort(rng.integers(0, 60 * 86_400, 400))
    amounts = np.round(rng.lognormal(3, 1, 400), 2)
    _, rows = fold(
        [
            txn(when=START + timedelta(seconds=int(s)), amount=float(a), transaction_id=str(i))
            for i, (s, a) in enumerate(zip(seconds, amounts, strict=True))
        ]
    )
    for i in range(0, 400, 7):
        for name, width in (("1h", 3600), ("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)):
            inside = amounts[: i + 1][seconds[: i + 1] > seconds[i] - width]
            assert rows[i][f"count_{name}"] == len(inside)
            assert rows[i][f"mean_amount_{name}"] == pytest.approx(inside.mean(), rel=1e-12)
            assert rows[i][f"max_amount_{name}"] == inside.max() and rows[i][f"min_amount_{name}"] == inside.min()
            if name == "1h":
                continue
            before = inside[:-1]
            if len(before):
                std = max(before.std(), 1.0)
                assert rows[i][f"amount_zscore_{name}"] == pytest.approx((amounts[i] - before.mean()) / std, rel=1e-9)
                assert rows[i][f"amount_ratio_mean_{name}"] == pytest.approx(amounts[i] / before.mean(), rel=1e-12)


def test_cyclic_hour_weekend_and_night() -> None:
    saturday_6am = START.replace(day=2, hour=6)  # 2024-03-02 is a Saturday
    _, (row,) = fold([txn(when=saturday_6am)])
    assert row["hour_sin"] == pytest.approx(1.0) and row["hour_cos"] == pytest.approx(0.0, abs=1e-12)
    assert row["is_weekend"] == 1.0 and row["is_night"] == 1.0
    _, (row,) = fold([txn(when=START.replace(day=4, hour=7))])  # Monday 07:00
    assert row["is_weekend"] == 0.0 and row["is_night"] == 0.0
    assert row["hour_sin"] ** 2 + row["hour_cos"] ** 2 == pytest.approx(1.0)


def test_haversine_and_travel_speed() -> None:
    assert haversine_km(50.8503, 4.3517, 48.8566, 2.3522) == pytest.approx(264.0, abs=2.0)  # Brussels-Paris
    assert haversine_km(10, 20, 10, 20) == 0.0
    events = [
        txn(when=START, latitude=50.8503, longitude=4.3517),
        txn(when=START + timedelta(hours=2), latitude=48.8566, longitude=2.3522),
        txn(when=START + timedelta(hours=3)),
    ]
    _, rows = fold(events)
    assert rows[1]["coords_missing"] == 0.0
    assert rows[1]["dist_prev_km"] == pytest.approx(264.0, abs=2.0)
    assert rows[1]["speed_kmh"] == pytest.approx(rows[1]["dist_prev_km"] / 2, rel=1e-9)
    assert rows[1]["dist_home_km"] == pytest.approx(rows[1]["dist_prev_km"], rel=1e-6)
    assert rows[2]["coords_missing"] == 1.0 and rows[2]["dist_prev_km"] == 0.0


def test_novelty_flags_and_distinct_merchants() -> None:
    base = {"merchant_category": "grocery", "device_id": "d1", "channel": "online"}
    events = [
        txn(when=START, merchant="a", **base),
        txn(when=START + timedelta(hours=1), merchant="b", **base),
        txn(when=START + timedelta(hours=2), merchant="a", **{**base, "device_id": "d2"}),
        txn(when=START + timedelta(days=1, hours=1, seconds=1), merchant="a", merchant_category="fuel"),
    ]
    _, rows = fold(events)
    assert [r["new_merchant"] for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert [r["new_category"] for r in rows] == [1.0, 0.0, 0.0, 1.0]
    assert [r["new_device"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [r["distinct_merchants_1d"] for r in rows] == [1.0, 2.0, 2.0, 1.0]
    assert rows[0]["channel_online"] == 1.0 and rows[0]["category_missing"] == 0.0
    assert 0 <= rows[0]["category_bucket"] < 32 and rows[3]["device_missing"] == 1.0


def test_late_events_are_flagged_and_not_folded() -> None:
    cfg = FeatureConfig(grace_period_s=600)
    on_time = txn(when=START + timedelta(hours=5), amount=50.0)
    within_grace = txn(when=START + timedelta(hours=4, minutes=55), amount=20.0)
    too_late = txn(when=START + timedelta(hours=4), amount=999.0)
    user, rows = fold([on_time, within_grace, too_late], cfg)
    assert not is_late(update_user(UserState(), on_time, cfg), within_grace, cfg)
    assert is_late(user, too_late, cfg)
    assert user.n_total == 2 and 99_900 not in user.log_cents
    assert rows[1]["count_1h"] == 1.0  # the later event already folded is not in the past window of this one
    assert rows[1]["seconds_since_last"] == 0.0  # out of order: clipped
    assert user.last_cents == 5000  # the latest event by event time stays the "last"


def test_merchant_features_use_delayed_windows_and_known_labels() -> None:
    from features.merchant import merchant_features

    day = 86_400
    t = 1_700_000_000
    view = MerchantView(
        tx_ts=(t - 9 * day, t - 8 * day, t - 8 * day + 1, t - 7 * day, t - 7 * day + 1, t - 6 * day),
        fraud_ts=(t - 8 * day + 1, t - 7 * day),
        fraud_labelled_at=(t - 1, t + 1),  # the second label is not known yet at t
    )
    row = dict(zip(["c1", "r1", "c7", "r7", "c30", "r30"], merchant_features(view, t, CFG), strict=True))
    assert row["c1"] == 2.0  # (t-8d, t-7d]: t-8d+1 and t-7d
    assert row["r1"] == 0.5
    assert row["c7"] == 4.0 and row["r7"] == 0.25
    assert merchant_features(MerchantView(), t, CFG) == [0.0] * 6


def test_feature_index_covers_handbook_columns() -> None:
    from features.spec import HANDBOOK_COLUMNS

    assert all(col in FEATURE_INDEX for col in HANDBOOK_COLUMNS.values())


def test_batch_columns_equal_the_per_event_fields() -> None:
    from features.fields import columns_of, fields_of
    from features.offline import transactions_from_frame
    from tests.feature_streams import synthetic_stream

    txns = list(transactions_from_frame(synthetic_stream(3000)))
    cols = columns_of(txns)
    for i, t in enumerate(txns):
        f = fields_of(t)
        assert (cols.ts[i], cols.cents[i], cols.amount[i]) == (f.ts, f.cents, f.amount)
        assert cols.merchant_h[i] == f.merchant_h
        assert (cols.category_h[i], cols.device_h[i], cols.channel[i]) == (f.category_h, f.device_h, f.channel)
        assert cols.located[i] == (f.lat_e6 is not None)
        assert (cols.lat_e6[i], cols.lon_e6[i]) == ((f.lat_e6, f.lon_e6) if f.lat_e6 is not None else (0, 0))
        assert cols.country_missing[i] == f.country_missing
    assert len(columns_of([])) == 0
    edge = txns[0].model_copy(update={"timestamp": datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)})
    assert columns_of([edge]).ts[0] == fields_of(edge).ts
