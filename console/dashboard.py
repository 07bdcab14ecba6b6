"""The dashboard's figures, computed from the stored alerts and their verdicts (pure: rows in, figures out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

SCORE_BINS = 10


@dataclass(frozen=True)
class Day:
    day: date
    alerts: int
    fraud: int
    legit: int

    @property
    def precision(self) -> float | None:
        decided = self.fraud + self.legit
        return self.fraud / decided if decided else None


@dataclass(frozen=True)
class Figures:
    days: list[Day]
    alerts: int
    fraud: int
    legit: int
    undecided: int
    #: (low, high, count) per score bin of the alerts.
    score_bins: list[tuple[float, float, int]]

    @property
    def precision(self) -> float | None:
        decided = self.fraud + self.legit
        return self.fraud / decided if decided else None

    @property
    def busiest_day(self) -> int:
        return max((d.alerts for d in self.days), default=0)

    @property
    def biggest_bin(self) -> int:
        return max((count for _lo, _hi, count in self.score_bins), default=0)


def figures(rows: Sequence[Any], now: datetime, days: int) -> Figures:
    """rows: (produced_at, score, status) of the alerts of the last `days` days; precision = fraud / (fraud + legit)
    verdicts (needs_review and undecided alerts are left out of it)."""
    first = (now - timedelta(days=days - 1)).date()
    per_day = {first + timedelta(days=i): [0, 0, 0] for i in range(days)}
    bins = [0] * SCORE_BINS
    totals = {"fraud": 0, "legit": 0, "new": 0, "needs_review": 0}
    for produced_at, score, status in rows:
        counts = per_day.get(produced_at.date())
        if counts is not None:
            counts[0] += 1
            counts[1] += status == "fraud"
            counts[2] += status == "legit"
        bins[min(int(score * SCORE_BINS), SCORE_BINS - 1)] += 1
        totals[status] = totals.get(status, 0) + 1
    return Figures(
        days=[Day(day, *counts) for day, counts in sorted(per_day.items(), reverse=True)],
        alerts=len(rows),
        fraud=totals["fraud"],
        legit=totals["legit"],
        undecided=totals["new"] + totals["needs_review"],
        score_bins=[(i / SCORE_BINS, (i + 1) / SCORE_BINS, n) for i, n in enumerate(bins)],
    )
