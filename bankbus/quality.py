"""How good the alerts are, against the simulator's truth: the figures an analyst and a manager ask for.

`Truth` holds the labelled transactions of a simulated file (id -> card, is_fraud); `quality()` compares the
transactions scored and the ones alerted with it. Pure: no Kafka, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fraudstream.errors import InputError


@dataclass(frozen=True)
class Truth:
    users: dict[str, str]  # transaction id -> user id (the card)
    frauds: frozenset[str]  # ids of the fraudulent transactions

    @classmethod
    def from_file(cls, path: Path) -> Truth:
        from bankbus.frames import read_canonical

        frame = read_canonical(path)
        if "is_fraud" not in frame.columns:
            raise InputError(f"{path} has no is_fraud column: the quality figures need the simulator's truth")
        ids = frame["transaction_id"].astype(str).tolist()
        fraud = frame["is_fraud"].astype(bool).tolist()
        return cls(dict(zip(ids, frame["user_id"].astype(str).tolist(), strict=True)),
                   frozenset(i for i, f in zip(ids, fraud, strict=True) if f))

    def __contains__(self, transaction_id: object) -> bool:
        return transaction_id in self.users


@dataclass(frozen=True)
class Quality:
    scored: int
    alerts: int
    true_alerts: int  # alerts on fraudulent transactions
    frauds: int  # fraudulent transactions among the scored
    fraud_cards: int  # cards with a fraudulent transaction among the scored
    cards_caught: int  # of those, cards with an alert on one of their fraudulent transactions

    @property
    def alerts_per_1000(self) -> float:
        return 1000.0 * self.alerts / self.scored if self.scored else 0.0

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.true_alerts / self.frauds if self.frauds else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "scored": self.scored, "alerts": self.alerts, "alerts_per_1000": round(self.alerts_per_1000, 1),
            "true_alerts": self.true_alerts, "frauds": self.frauds,
            "precision": None if self.precision is None else round(self.precision, 3),
            "recall": None if self.recall is None else round(self.recall, 3),
            "fraud_cards": self.fraud_cards, "cards_caught": self.cards_caught,
        }

    def line(self) -> str:
        def ratio(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1%}"

        return (
            f"{self.scored:,} scored, {self.alerts:,} alerts = {self.alerts_per_1000:.1f} per 1,000 | "
            f"precision {ratio(self.precision)} ({self.true_alerts}/{self.alerts} alerts are fraud) | "
            f"recall {ratio(self.recall)} ({self.true_alerts}/{self.frauds} frauds alerted) | "
            f"fraud cards caught {self.cards_caught}/{self.fraud_cards}"
        )


def quality(truth: Truth, scored: Iterable[str], alerted: Iterable[str]) -> Quality:
    """Figures over the transactions of `truth` that were scored; ids outside `truth` are ignored."""
    scored_ids = {t for t in scored if t in truth}
    alerted_ids = {t for t in alerted if t in truth} & scored_ids
    frauds = truth.frauds & scored_ids
    true_alerts = frauds & alerted_ids
    return Quality(
        scored=len(scored_ids),
        alerts=len(alerted_ids),
        true_alerts=len(true_alerts),
        frauds=len(frauds),
        fraud_cards=len({truth.users[t] for t in frauds}),
        cards_caught=len({truth.users[t] for t in true_alerts}),
    )
