"""The book's protocol in the backtest report: known compromised cards removed per assessed day, CP@k with
earlier-caught cards removed, its labels-as-scores ceiling, mean and spread over folds. Hand-computed examples, and
a loop-by-loop NumPy/pandas reference written after the handbook's own get_train_test_set / card_precision_top_k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.metrics import book_metrics, card_precision_ceiling, known_compromised, mean_and_spread
from backtest.report import markdown, summary_lines

DAY0 = pd.Timestamp("2024-01-01", tz="UTC")


def _at(day: int, hour: int = 12) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=day, hours=hour)


def test_known_compromised_by_hand() -> None:
    # training window starts day 0, label delay 2 days: on day t a card is known if it had a fraud on [0, t - 3]
    frauds = pd.DataFrame(
        {"user_id": ["a", "b", "c", "z"], "timestamp": [_at(0), _at(3), _at(5), _at(-1)]}
    )  # z's fraud is before the training window: not known by the book's rule
    rows = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", "b", "c", "z", "d"],
            "timestamp": [_at(4), _at(5), _at(6), _at(7), _at(7), _at(7), _at(7)],
            "fold": [0] * 7,
        }
    )
    known = known_compromised(rows, frauds, {0: DAY0}, delay_days=2)
    # a: 0 <= 4-3; b day 5: 3 > 2, day 6: 3 <= 3, day 7: yes; c: 5 > 4; z: before since; d: no fraud
    assert known.tolist() == [True, False, True, True, False, False, False]
    # a fractional delay is rounded up to whole days (a label arriving mid-day is not known all that day)
    assert known_compromised(rows, frauds, {0: DAY0}, delay_days=1.5).tolist() == known.tolist()
    # each fold its own training start
    later = rows.assign(fold=[1] * 7)
    assert not known_compromised(later, frauds, {1: _at(1, 0)}, 2)[0]  # a's day-0 fraud precedes fold 1's start


def _book_frame() -> pd.DataFrame:
    """Two days, k = 2. Day 0: cards a (fraud), b (legit), c (fraud, already known compromised); day 1: a again
    (fraud, caught on day 0), d (fraud), e (legit), f (legit)."""
    return pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "a", "d", "e", "f"],
            "timestamp": [_at(0, 1), _at(0, 2), _at(0, 3), _at(1, 1), _at(1, 2), _at(1, 3), _at(1, 4)],
            "score": [0.9, 0.8, 0.95, 0.99, 0.3, 0.7, 0.1],
            "label": [1, 0, 1, 1, 1, 0, 0],
            "known_compromised": [False, False, True, False, False, False, False],
            "fold": [0] * 7,
        }
    )


def test_book_metrics_by_hand() -> None:
    out = book_metrics(_book_frame(), k=2)
    assert out["removed_rows"] == 1 and out["removed_cards"] == 1 and out["n"] == 6 and out["n_fraud"] == 3
    # day 0 top 2 of {a .9, b .8} -> 1 fraud -> 0.5, a caught; day 1 without a: {e .7, d .3} -> 0.5
    assert out["card_precision_at_2"] == pytest.approx(0.5)
    # ceiling: day 0 a is the only fraud card -> 1/2; day 1 (a caught) d -> 1/2
    assert out["card_precision_at_2_ceiling"] == pytest.approx(0.5)
    # kept rows ranked: .99 F, .9 F, .8 L, .7 L, .3 F, .1 L: AP = (1/1 + 2/2 + 3/5) / 3; AUC = (3 + 3 + 1) / 9
    assert out["average_precision"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert out["roc_auc"] == pytest.approx(7 / 9)
    # keeping the known card (protocol `all`): c tops day 0, so CP differs; the book removes it
    all_rows = _book_frame().assign(known_compromised=False)
    assert book_metrics(all_rows, k=2)["card_precision_at_2"] == pytest.approx(0.75)


def test_ceiling_counts_uncaught_fraud_cards_per_day() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "a", "b", "d"],
            "timestamp": [_at(0), _at(0), _at(0), _at(1), _at(1), _at(1)],
            "label": [1, 1, 1, 1, 0, 1],
            "score": 0.0,
        }
    )
    # k=2: day 0 three fraud cards, two fit -> 1.0 (a, b caught); day 1: a caught, d -> 1/2
    assert card_precision_ceiling(frame, k=2) == pytest.approx(0.75)


def reference_book(
    history: pd.DataFrame, since: pd.Timestamp, test_start: pd.Timestamp, test_days: int, delay: int, k: int
) -> dict[str, float]:
    """The handbook's code, day by day: known_defrauded_customers grows from the training start with each delay day,
    each test day is filtered, then card precision top-k per day with detected cards removed."""
    day = (history["timestamp"] - since).dt.days.to_numpy()
    first_test = int((test_start - since).days)
    known = set(history.loc[(day >= 0) & (day < first_test - delay) & (history["label"] == 1), "user_id"])
    kept = []
    for d in range(test_days):
        new = history[(day == first_test - delay + d - 1) & (history["label"] == 1)]
        known |= set(new["user_id"])
        today = history[day == first_test + d]
        kept.append(today[~today["user_id"].isin(known)])
    oracle = [today.assign(score=today["label"].astype(float)) for today in kept]
    return {"cp": _reference_cp(kept, k), "ceiling": _reference_cp(oracle, k), "n": sum(map(len, kept))}


def _reference_cp(kept: list[pd.DataFrame], k: int) -> float:
    detected: list[str] = []
    precisions = []
    for today in kept:
        today = today[~today["user_id"].isin(detected)]
        cards = today.groupby("user_id").agg(score=("score", "max"), label=("label", "max"))
        top = cards.sort_values("score", ascending=False, kind="mergesort").head(k)
        precisions.append(top["label"].sum() / k)
        detected.extend(top.index[top["label"] == 1])
    return float(np.mean(precisions))


def test_matches_the_handbook_reference_on_random_data() -> None:
    rng = np.random.default_rng(3)
    n, cards, days = 4000, 80, 21
    history = pd.DataFrame(
        {
            "user_id": rng.integers(0, cards, n).astype(str),
            "timestamp": DAY0 + pd.to_timedelta(np.sort(rng.integers(0, days * 86400, n)), unit="s"),
            "label": (rng.random(n) < 0.04).astype(int),
        }
    )
    history["score"] = np.round(rng.random(n) + 0.5 * history["label"], 2)  # ties on purpose
    test_start, k = DAY0 + pd.Timedelta(days=14), 5
    rows = history[history["timestamp"] >= test_start].assign(fold=0)
    frauds = history[history["label"] == 1]
    rows["known_compromised"] = known_compromised(rows, frauds, {0: DAY0}, delay_days=7)
    ours = book_metrics(rows, k)
    ref = reference_book(history, DAY0, test_start, 7, 7, k)
    assert rows["known_compromised"].any() and ours["n"] == ref["n"]
    assert ours["card_precision_at_5"] == pytest.approx(ref["cp"])
    assert ours["card_precision_at_5_ceiling"] == pytest.approx(ref["ceiling"])
    assert ours["card_precision_at_5"] <= ours["card_precision_at_5_ceiling"]


def test_mean_and_spread_and_report_say_which_protocol() -> None:
    folds = [{"average_precision": 0.6, "roc_auc": 0.8}, {"average_precision": 0.8, "roc_auc": 0.9}]
    over = mean_and_spread(folds)
    assert over["average_precision"]["mean"] == pytest.approx(0.7)
    assert over["average_precision"]["std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert np.isnan(mean_and_spread(folds[:1])["roc_auc"]["std"])

    from backtest.report import fold_table

    frame = _book_frame().assign(alerted=False, transaction_id=[f"t{i}" for i in range(7)])
    second = frame.assign(fold=1, timestamp=frame["timestamp"] + pd.Timedelta(days=7))
    folds_meta = [
        {"index": i, "threshold": 0.5, "test_start": str(_at(7 * i, 0)), "test_end": str(_at(7 * i + 2, 0))}
        for i in (0, 1)
    ]
    rows, overall, book = fold_table(pd.concat([frame, second]), folds_meta, k=2)
    assert rows[0]["book_metrics"]["removed_rows"] == 1
    assert book["over_folds"]["card_precision_at_2"]["mean"] == pytest.approx(0.5)
    report = {
        "run": {"run_id": "r", "input": "x", "models": "m", "scorer": "mlp", "label_delay_days": 7.0},
        "data": {"transactions": 14, "frauds": 8, "first": "a", "last": "b"},
        "coverage": {"assessed": 14, "scored": 14, "missing": 0},
        "replay": [],
        "folds": rows,
        "overall": overall,
        "book": book,
    }
    text = markdown(report)
    assert "## Headline: all transactions" in text and "## Headline: the book's protocol" in text
    assert "| **mean ± std** | 2 folds |" in text
    lines = summary_lines(report, k=2)
    assert lines[0].startswith("all transactions (14)")
    assert lines[1].startswith("book protocol (known compromised cards removed, mean±std over 2 folds)")
    assert "ceiling 0.500±0.000" in lines[1]


def test_scores_table_marks_known_compromised_cards_per_fold() -> None:
    from types import SimpleNamespace

    from backtest.job import scores_table
    from backtest.windows import walk_forward

    # folds of 1 train day, delay 1, test 2 days from day 2: fold 0 trains on day 0 and tests days 2-3, fold 1
    # trains on day 2 and tests days 4-5; with a 1-day label delay a fraud on day f is known from day f + 2
    stamps = [_at(0), _at(2), _at(2, 13), _at(3), _at(4), _at(4, 13), _at(5)]
    history = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(7)],
            "user_id": ["a", "b", "a", "b", "b", "a", "c"],
            "timestamp": stamps,
            "is_fraud": [1, 1, 0, 0, 0, 0, 1],
        }
    )
    windows = walk_forward(stamps[0], stamps[-1], train_days=1, delay_days=1, test_days=2, first_test_start=_at(2, 0))
    prep = SimpleNamespace(history=SimpleNamespace(frame=history), windows=windows)
    scores = pd.DataFrame(
        {"transaction_id": history["transaction_id"][1:], "score": np.linspace(0.1, 0.9, 6), "alerted": False}
    ).assign(model_version="v")
    table = scores_table(prep, scores, label_delay_days=1.0)  # type: ignore[arg-type]
    by_id = table.set_index("transaction_id")
    # t1 b day 2: its fraud is that day; t2 a day 2: a's training-day fraud (0 <= 2 - 2); t3 b day 3: b's day-2
    # fraud not yet labelled; t4 b day 4 (fold 1 starts day 2): known; t5 a day 4: a's day-0 fraud precedes fold 1's
    # training window, so not known to it; t6 c day 5: its fraud is that day
    assert by_id["known_compromised"].to_dict() == {
        "t1": False,
        "t2": True,
        "t3": False,
        "t4": True,
        "t5": False,
        "t6": False,
    }
    late = scores_table(prep, scores, label_delay_days=0.0)  # labels at once: b known on day 3 in fold 0
    assert late.set_index("transaction_id")["known_compromised"]["t3"]
